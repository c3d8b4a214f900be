//! Service names: a pod joins or leaves its aliases on the project network, keeping its
//! address so the connections it serves go on.

use super::*;

/// Puts a container behind service names on a network, unless it is already there (a re-run
/// must not disturb a serving pod).
pub async fn join_service(
    docker: &Docker,
    container: &str,
    network: &str,
    aliases: &[String],
    addresses: &super::Addresses,
) -> Result<(), OpError> {
    let current = endpoint(docker, container, network).await?;
    let have = current
        .as_ref()
        .and_then(|e| e.aliases.clone())
        .unwrap_or_default();
    if current.is_some() && aliases.iter().all(|a| have.contains(a)) {
        return Ok(());
    }
    reconnect_whole(docker, container, network, current, aliases, addresses)
        .await
        .map_err(within(format!(
            "putting {container} behind {}",
            aliases.join(", ")
        )))
}

/// Takes a container out from behind service names: new connections stop coming (Docker's
/// DNS drops it at once) while the ones it serves go on, as it keeps its address. A
/// container behind none of them is left as it is.
pub async fn leave_service(
    docker: &Docker,
    container: &str,
    network: &str,
    aliases: &[String],
    addresses: &super::Addresses,
) -> Result<(), OpError> {
    let current = endpoint(docker, container, network).await?;
    let have = current
        .as_ref()
        .and_then(|e| e.aliases.clone())
        .unwrap_or_default();
    if current.is_none() || !aliases.iter().any(|a| have.contains(a)) {
        return Ok(());
    }
    reconnect_whole(docker, container, network, current, &[], addresses)
        .await
        .map_err(within(format!(
            "taking {container} out of {}",
            aliases.join(", ")
        )))
}

async fn endpoint(
    docker: &Docker,
    container: &str,
    network: &str,
) -> Result<Option<EndpointSettings>, OpError> {
    match docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
    {
        Ok(info) => Ok(info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))),
        Err(e) if status_of(&e) == Some(404) => {
            Err(OpError::Refused(format!("{container} does not exist")))
        }
        Err(e) => Err(doing(format!("inspecting {container}"))(e)),
    }
}

/// `reconnect`, run to its end even when the apply stops waiting (Ctrl-C, SIGTERM): a pod
/// must never be left disconnected between the two calls, which would break the
/// connections it serves.
async fn reconnect_whole(
    docker: &Docker,
    container: &str,
    network: &str,
    current: Option<EndpointSettings>,
    aliases: &[String],
    addresses: &super::Addresses,
) -> Result<(), OpError> {
    let moving = addresses.moving().await;
    let (docker, container, network, aliases) = (
        docker.clone(),
        container.to_string(),
        network.to_string(),
        aliases.to_vec(),
    );
    tokio::spawn(async move {
        let reconnected = reconnect(&docker, &container, &network, current, &aliases).await;
        drop(moving);
        reconnected
    })
    .await
    .map_err(|e| OpError::Refused(format!("reconnecting: {e}")))?
}

/// Disconnects and connects again with new aliases, at the same address where the network
/// allows it (a pinned subnet), so established connections survive the switch, and with the
/// same MAC address: an engine that gives each connection a new one (podman; Docker since
/// 25) would otherwise leave the other pods' ARP caches pointing at the old one, and their
/// new connections to the pod hanging for seconds.
async fn reconnect(
    docker: &Docker,
    container: &str,
    network: &str,
    current: Option<EndpointSettings>,
    aliases: &[String],
) -> Result<(), OpError> {
    let address = current
        .as_ref()
        .and_then(|e| e.ip_address.clone())
        .filter(|a| !a.is_empty());
    let mac_address = current
        .as_ref()
        .and_then(|e| e.mac_address.clone())
        .filter(|m| !m.is_empty());
    if current.is_some() {
        let disconnect = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        match docker.disconnect_network(network, disconnect).await {
            // A connect that failed (its address taken by a container not berth's) can leave
            // the network in the container's settings without an endpoint: connect it then.
            Err(e) if e.to_string().contains("is not connected to network") => {}
            other => other.or_else(|e| ignore(e, &[404]))?,
        }
    }
    let connect =
        |address: Option<String>| connect_request(container, aliases, address, mac_address.clone());
    match docker
        .connect_network(network, connect(address.clone()))
        .await
    {
        // A network without a configured subnet (made before berth pinned them) takes no
        // address (400), and a container not berth's may have taken it meanwhile (403):
        // connect with a new one. The connections it served are lost, but it is on its
        // network.
        Err(e) if address.is_some() && matches!(status_of(&e), Some(400 | 403)) => docker
            .connect_network(network, connect(None))
            .await
            .map_err(OpError::from),
        other => other.map_err(OpError::from),
    }
}

/// Connects `container` under `aliases` (none: no service name), at `address` and with
/// `mac_address` when given (see `reconnect`).
fn connect_request(
    container: &str,
    aliases: &[String],
    address: Option<String>,
    mac_address: Option<String>,
) -> NetworkConnectRequest {
    NetworkConnectRequest {
        container: container.to_string(),
        endpoint_config: Some(EndpointSettings {
            aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
            mac_address,
            ipam_config: address.map(|a| EndpointIpamConfig {
                ipv4_address: Some(a),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// A container's address on a network.
pub async fn address(docker: &Docker, container: &str, network: &str) -> Result<String, OpError> {
    endpoint(docker, container, network)
        .await?
        .and_then(|e| e.ip_address)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OpError::Refused(format!("{container} has no address on {network}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_keeps_the_address_and_the_mac_address_and_sets_the_names() {
        let joined = connect_request(
            "web-1-app",
            &["web".into()],
            Some("198.19.0.7".into()),
            Some("02:42:c6:13:00:07".into()),
        );
        assert_eq!(joined.container, "web-1-app");
        let endpoint = joined.endpoint_config.unwrap();
        assert_eq!(endpoint.aliases, Some(vec!["web".to_string()]));
        assert_eq!(endpoint.mac_address.as_deref(), Some("02:42:c6:13:00:07"));
        let ipam = endpoint.ipam_config.unwrap();
        assert_eq!(ipam.ipv4_address.as_deref(), Some("198.19.0.7"));
    }

    #[test]
    fn a_pod_leaving_its_service_is_connected_under_no_name_and_may_take_any_address() {
        let left = connect_request("web-1-app", &[], None, None);
        let endpoint = left.endpoint_config.unwrap();
        assert_eq!(endpoint.aliases, None);
        assert_eq!(endpoint.ipam_config, None);
        assert_eq!(endpoint.mac_address, None);
    }
}
