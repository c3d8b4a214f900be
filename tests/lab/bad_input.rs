//! The bad-input corpus: broken repositories, flags, selectors and plan files, each given to
//! `berth apply --auto-approve` (the command that would change hosts). Each must exit with
//! its code, say what is wrong in the user's words (checked with miette's wrapping undone),
//! never panic, and change nothing on any host. Then faults of the hosts themselves (unknown
//! host keys, unreachable or misbehaving hosts, images that do not exist, containers that crash
//! on start, ports already taken): each named, and the running pods left exactly as they were.

use crate::common::*;

/// A valid repository: what every case starts from (a case replaces or adds files).
const BASE: &[(&str, &str)] = &[
    ("berth.yaml", "project: t-bad\n"),
    (
        "inventory.yaml",
        "hosts:\n  - {name: h1, address: 198.18.0.11, labels: {role: web}}\n  - {name: h2, address: 198.18.0.12, labels: {role: web}}\n",
    ),
    (
        "deployments/web.yaml",
        "name: web\nlabels: {app: web}\nreplicas: 2\nservice: {name: web}\npod:\n  containers:\n    - name: app\n      image: berth-lab/web:v1\nstrategy: {min_ready: 0s}\n",
    ),
];

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    /// Words the output must hold (stdout and stderr, wrapping undone).
    says: &'static [&'static str],
}

const APPLY: &[&str] = &["apply", "--auto-approve"];

fn case(
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        files,
        args: APPLY,
        code: 1,
        says,
    }
}

fn deployment(name: &'static str, yaml: &'static str, says: &'static [&'static str]) -> Case {
    case(
        name,
        Box::leak(Box::new([("deployments/web.yaml", yaml)])),
        says,
    )
}

fn inventory(name: &'static str, yaml: &'static str, says: &'static [&'static str]) -> Case {
    case(name, Box::leak(Box::new([("inventory.yaml", yaml)])), says)
}

fn project(name: &'static str, yaml: &'static str, says: &'static [&'static str]) -> Case {
    case(name, Box::leak(Box::new([("berth.yaml", yaml)])), says)
}

fn args(name: &'static str, args: &'static [&'static str], says: &'static [&'static str]) -> Case {
    Case {
        name,
        files: &[],
        args,
        code: 1,
        says,
    }
}

const POD: &str = "name: web\nreplicas: 2\nservice: {name: web}\npod:\n  containers:\n";

/// A deployment of one container whose fields are `fields` (YAML flow mapping entries).
fn container(name: &'static str, fields: &str, says: &'static [&'static str]) -> Case {
    let yaml = format!("{POD}    - {{name: app, image: berth-lab/web:v1, {fields}}}\n");
    deployment(name, Box::leak(yaml.into_boxed_str()), says)
}

/// A container with `fields`, and more files in the repository.
fn container_with(
    name: &'static str,
    fields: &str,
    extra: &'static [(&'static str, &'static str)],
    says: &'static [&'static str],
) -> Case {
    let yaml = format!("{POD}    - {{name: app, image: berth-lab/web:v1, {fields}}}\n");
    let mut files = vec![("deployments/web.yaml", &*Box::leak(yaml.into_boxed_str()))];
    files.extend_from_slice(extra);
    case(name, Box::leak(files.into_boxed_slice()), says)
}

fn strategy(name: &'static str, fields: &str, says: &'static [&'static str]) -> Case {
    let yaml =
        format!("{POD}    - {{name: app, image: berth-lab/web:v1}}\nstrategy: {{{fields}}}\n");
    deployment(name, Box::leak(yaml.into_boxed_str()), says)
}

fn corpus() -> Vec<Case> {
    vec![
        // The repository's shape.
        project("berth.yaml is empty", "", &["the file is empty", "berth.yaml"]),
        project("berth.yaml without a project", "defaults: {}\n", &["missing key `project`"]),
        project("a project name with spaces", "project: my shop\n", &["invalid project name"]),
        project("an unknown key in berth.yaml", "project: t-bad\nproject_name: x\n", &["unknown key `project_name`", "the keys here are project, inventory, defaults"]),
        project("a list instead of a mapping", "- project: t-bad\n", &["must be a mapping"]),
        project("two YAML documents", "project: t-bad\n---\nproject: other\n", &["one YAML document per file"]),
        project("a tab in the indentation", "project: t-bad\ndefaults:\n\tstrategy: {}\n", &["a tab in the indentation", "spaces only"]),
        project("an unknown default", "project: t-bad\ndefaults: {replicas: 3}\n", &["unknown key `replicas`"]),
        project("a missing inventory file", "project: t-bad\ninventory: hosts.yaml\n", &["inventory file hosts.yaml not found"]),
        project("a default strategy that does not exist", "project: t-bad\ndefaults: {strategy: {type: yolo}}\n", &["unknown strategy \"yolo\""]),
        project("a default restart policy that does not exist", "project: t-bad\ndefaults: {restart: sometimes}\n", &["unknown restart policy \"sometimes\""]),
        project("a duplicate key in berth.yaml", "project: t-bad\nproject: t-bad\n", &["`project` appears twice"]),
        project("a registry password written in Git", "project: t-bad\nregistries:\n  - {server: ghcr.io, username: bot, password: hunter2}\n", &["the password of registry ghcr.io is not a secret reference", "password: {secret: NAME}", "berth.yaml"]),
        project("two logins for one registry", "project: t-bad\nregistries:\n  - {server: ghcr.io, username: a, password: {secret: a}}\n  - {server: \"https://GHCR.io/\", username: b, password: {secret: b}}\n", &["registry ghcr.io has two logins"]),
        project("a registry server with a path", "project: t-bad\nregistries:\n  - {server: ghcr.io/acme, username: a, password: {secret: a}}\n", &["invalid registry server"]),
        project("a registry login without a username", "project: t-bad\nregistries:\n  - {server: ghcr.io, password: {secret: a}}\n", &["missing key `username`"]),
        // The inventory.
        inventory("an empty inventory file", "", &["the file is empty", "inventory.yaml"]),
        inventory("hosts is not a list", "hosts: h1\n", &["`hosts` must be a list"]),
        inventory("a host without an address", "hosts:\n  - {name: h1}\n", &["missing key `address`"]),
        inventory("an empty address", "hosts:\n  - {name: h1, address: \"\"}\n", &["empty host address"]),
        inventory("an address with a space", "hosts:\n  - {name: h1, address: \"198.18.0.11 x\"}\n", &["invalid host address \"198.18.0.11 x\"", "' ' cannot be in an address"]),
        inventory("a user with a space", "hosts:\n  - {name: h1, address: 198.18.0.11, user: \"de ploy\"}\n", &["invalid SSH user \"de ploy\""]),
        inventory("two hosts with one name", "hosts:\n  - {name: h1, address: 198.18.0.11}\n  - {name: h1, address: 198.18.0.12}\n", &["two hosts are named \"h1\""]),
        inventory("two hosts on one address and port", "hosts:\n  - {name: h1, address: 198.18.0.11}\n  - {name: h2, address: 198.18.0.11}\n", &["hosts h1 and h2 have the same address and port"]),
        inventory("ssh port 0", "hosts:\n  - {name: h1, address: 198.18.0.11, port: 0}\n", &["an SSH port is 1 to 65535"]),
        inventory("ssh port 70000", "hosts:\n  - {name: h1, address: 198.18.0.11, port: 70000}\n", &["`port` must be a whole number from 0 to 65535"]),
        inventory("an empty user", "hosts:\n  - {name: h1, address: 198.18.0.11, user: \"\"}\n", &["empty SSH user"]),
        inventory("an invalid host name", "hosts:\n  - {name: \"h 1\", address: 198.18.0.11}\n", &["invalid host name"]),
        inventory("a host label with a bad key", "hosts:\n  - {name: h1, address: 198.18.0.11, labels: {\"-role\": web}}\n", &["invalid label key"]),
        inventory("a host label with a bad value", "hosts:\n  - {name: h1, address: 198.18.0.11, labels: {role: \"web server\"}}\n", &["invalid label value"]),
        inventory("an unknown host key", "hosts:\n  - {name: h1, address: 198.18.0.11, adress: x}\n", &["unknown key `adress`", "did you mean `address`?"]),
        // Deployments.
        deployment("a deployment file that is empty", "", &["the file is empty", "deployments/web.yaml"]),
        deployment("a deployment without a pod", "name: web\nreplicas: 1\n", &["missing key `pod`"]),
        deployment("a pod without containers", "name: web\npod: {containers: []}\n", &["a pod needs at least one container"]),
        deployment("a container without an image", "name: web\npod:\n  containers:\n    - {name: app}\n", &["missing key `image`"]),
        deployment("an image that is null", "name: web\npod:\n  containers:\n    - {name: app, image: null}\n", &["`image` must be a string, not null"]),
        deployment("an image with a space", "name: web\npod:\n  containers:\n    - {name: app, image: \"berth lab\"}\n", &["invalid image reference"]),
        deployment("replicas as text", "name: web\nreplicas: many\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["`replicas` must be a whole number"]),
        deployment("negative replicas", "name: web\nreplicas: -1\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["`replicas` must be a whole number"]),
        deployment("replicas beyond u32", "name: web\nreplicas: 99999999999\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["`replicas` must be a whole number from 0 to 4294967295"]),
        deployment("more replicas than places", "name: web\nreplicas: 3\nplacement: {max_per_host: 1}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["3 replicas of web cannot be placed"]),
        deployment("max_per_host 0", "name: web\nplacement: {max_per_host: 0}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["max_per_host must be at least 1"]),
        deployment("a placement nobody matches", "name: web\nplacement: {hosts: role=db}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["no host in the inventory matches the placement selector"]),
        deployment("a placement selector that does not parse", "name: web\nplacement: {hosts: \"role in (web\"}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["invalid label selector"]),
        deployment("a mistyped key", "name: web\nreplica: 2\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["unknown key `replica`", "did you mean `replicas`?"]),
        deployment("a deployment name with capitals", "name: Web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["invalid deployment name"]),
        deployment("two containers with one name", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n    - {name: app, image: berth-lab/web:v1}\n", &["two containers in this pod are named \"app\""]),
        deployment("a user label under berth's prefix", "name: web\nlabels: {berth.role: x}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["label berth.role is berth's own"]),
        deployment("a deployment label with a bad value", "name: web\nlabels: {app: \"a b\"}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["invalid label value"]),
        deployment("an invalid service name", "name: web\nservice: {name: Web_1}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n", &["invalid service name"]),
        deployment("one host port twice in a pod", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1, ports: [\"8080:80\"]}\n    - {name: side, image: berth-lab/web:v1, ports: [\"8080:81\"]}\n", &["host port 8080/tcp is published twice in this pod"]),
        deployment("indentation that moves image out of the container", "name: web\npod:\n  containers:\n    - name: app\n  image: berth-lab/web:v1\n", &["missing key `image`", "line 5 has `image:`, but not inside this mapping"]),
        case("a service that is another's preview name", &[("deployments/api.yaml", "name: api\nservice: {name: web-preview}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n")], &["service \"web-preview\" is the preview name of web's service"]),
        case("two deployments with one name", &[("deployments/web2.yaml", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n")], &["two deployments are named \"web\""]),
        case("two deployments with one service", &[("deployments/api.yaml", "name: api\nservice: {name: web}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\n")], &["service \"web\" is already used by deployment"]),
        case("two deployments publishing one host port", &[("deployments/a.yaml", "name: a\nplacement: {max_per_host: 1}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1, ports: [\"8080:80\"]}\n"), ("deployments/b.yaml", "name: b\nplacement: {max_per_host: 1}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1, ports: [\"8080:80\"]}\n")], &["host port 8080/tcp is published by two deployments"]),
        container("init that is neither true nor false", "init: sometimes", &["`init` must be true or false"]),
        container("a port that is not a number", "ports: [http]", &["invalid port"]),
        container("port 0", "ports: [\"0:80\"]", &["invalid port", "ports are 1 to 65535"]),
        container("a port above 65535", "ports: [\"70000\"]", &["invalid port"]),
        container("a protocol that does not exist", "ports: [\"80/sctp\"]", &["protocol must be tcp or udp"]),
        container("a volume without a target", "volumes: [data]", &["invalid volume"]),
        container("two volumes on one path", "volumes: [\"a:/data\", \"b:/data\"]", &["two volumes are mounted on /data"]),
        container("a relative volume target", "volumes: [\"data:data\"]", &["invalid volume"]),
        container("an env name with =", "env: {\"A=B\": x}", &["invalid env name \"A=B\""]),
        container("an empty env name", "env: {\"\": x}", &["invalid env name \"\""]),
        container("an env value that is null", "env: {A: null}", &["invalid value for env A", "no value"]),
        container("an env value that is a list", "env: {A: [1, 2]}", &["invalid value for env A"]),
        container("a secret name with a space", "env: {A: {secret: \"db password\"}}", &["invalid secret name \"db password\"", "letters, digits"]),
        container("a secret reference with an unknown key", "env: {A: {secret: db, version: 2}}", &["a secret reference is {secret: NAME} and nothing else", "`version`"]),
        container("a secret that is not set", "env: {A: {secret: t-bad-unset}}", &["secret \"t-bad-unset\" has no value", "BERTH_SECRET_T_BAD_UNSET"]),
        container("a memory limit below Docker's minimum", "memory: 1k", &["invalid memory limit", "below Docker's minimum"]),
        container("a memory limit that overflows", "memory: 99999999999999999999g", &["invalid memory limit", "larger than Docker can take"]),
        container("a memory limit in an unknown unit", "memory: 5 parsecs", &["invalid memory limit"]),
        container("zero CPUs", "cpus: 0", &["invalid CPU limit"]),
        container("CPUs that overflow", "cpus: 1e300", &["invalid CPU limit", "larger than Docker can take"]),
        container("negative CPUs", "cpus: -1", &["invalid CPU limit"]),
        container("a restart policy that does not exist", "restart: sometimes", &["sometimes"]),
        container("an empty healthcheck", "healthcheck: {test: []}", &["an empty healthcheck test"]),
        container("a healthcheck of only CMD", "healthcheck: {test: [CMD]}", &["an empty healthcheck test"]),
        container("an empty shell healthcheck", "healthcheck: {test: \"\"}", &["an empty healthcheck test"]),
        container("a healthcheck interval that is not a duration", "healthcheck: {test: [CMD, \"true\"], interval: soon}", &["invalid duration \"soon\""]),
        container("a healthcheck item YAML reads as true", "healthcheck: {test: [CMD, true]}", &["`test` must be a list of strings"]),
        container("a healthcheck without test", "healthcheck: {interval: 1s}", &["missing key `test`"]),
        container("an unknown container key", "imagee: x", &["did you mean `image`?"]),
        container("an invalid container name", "name2: x", &["did you mean `name`?"]),
        strategy("an unknown strategy", "type: big-bang", &["unknown strategy \"big-bang\""]),
        strategy("max_surge and max_unavailable both 0", "max_surge: 0, max_unavailable: 0", &["max_surge and max_unavailable are both 0"]),
        strategy("a percentage above 100", "max_surge: 150%", &["is more than 100%"]),
        // Files and env files.
        container("a file that is not in the repository", "files: [{source: config/app.conf, target: /etc/app.conf}]", &["config/app.conf is not in the repository", "web.yaml"]),
        container("a file from outside the repository", "files: [{source: ../secret.txt, target: /etc/app.conf}]", &["invalid path \"../secret.txt\"", "can lead out of the repository"]),
        container_with("a file with a relative target", "files: [{source: app.conf, target: etc/app.conf}]", &[("app.conf", "x=1\n")], &["invalid file target", "absolute path in the container"]),
        container_with("a file mode that is not octal", "files: [{source: app.conf, target: /etc/app.conf, mode: 0999}]", &[("app.conf", "x=1\n")], &["invalid file mode", "not an octal mode"]),
        container_with("two files at one target", "files: [{source: app.conf, target: /etc/a}, {source: app.conf, target: /etc/a}]", &[("app.conf", "x=1\n")], &["two files are placed at /etc/a"]),
        container_with("a template with an unknown placeholder", "files: [{source: app.conf, target: /etc/app.conf, template: true}]", &[("app.conf", "user=app\npassword=${{ env.DB }}\n")], &["invalid template", "`env.DB` is not a secret reference", "app.conf"]),
        container_with("a template whose secret has no value", "files: [{source: app.conf, target: /etc/app.conf, template: true}]", &[("app.conf", "password=${{ secrets.db-pass }}\n")], &["secret \"db-pass\" has no value", "BERTH_SECRET_DB_PASS"]),
        container_with("an env file with a bad line", "env_file: app.env", &[("app.env", "A=1\nthis is not a pair\n")], &["invalid env file line", "KEY=VALUE", "app.env"]),
        container("an env value that is a list", "env: {A: [db]}", &["invalid value for env A"]),
        container("an env file that is not there", "env_file: [config/app.env]", &["config/app.env is not in the repository"]),
        container("an env file secret without a value", "env_file: {secret: app-env}", &["secret \"app-env\" has no value", "BERTH_SECRET_APP_ENV"]),
        // Jobs.
        deployment("a job of a container the pod does not have", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\njobs:\n  - {name: migrate, container: db, command: [migrate]}\n", &["the pod has no container \"db\"", "a job runs as one of the pod's containers: app"]),
        deployment("a job with a bad host selector", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\njobs:\n  - {name: migrate, hosts: \"role in (db\"}\n", &["invalid label selector"]),
        deployment("two jobs of one name", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\njobs:\n  - {name: migrate}\n  - {name: migrate}\n", &["two jobs of this deployment are named \"migrate\""]),
        deployment("a job with an unknown key", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\njobs:\n  - {name: migrate, run: [true]}\n", &["unknown key `run`"]),
        strategy("a drain that overflows", "drain: 18446744073709552", &["invalid duration", "too long"]),
        strategy("a drain in seconds that overflows", "drain: 18446744073709552s", &["invalid duration", "too long"]),
        strategy("a health timeout of nonsense", "health_timeout: forever", &["invalid duration"]),
        strategy("a canary without steps", "type: canary", &["a canary rollout needs steps"]),
        strategy("a canary weight above 100", "type: canary, steps: [{weight: 150}]", &["a weight is a percentage"]),
        strategy("an analysis on port 0", "type: canary, steps: [{weight: 50}, {analysis: {port: 0}}]", &["an analysis port is 1 to 65535"]),
        strategy("a canary step with two keys", "type: canary, steps: [{weight: 20, pause: 1s}]", &["a canary step has exactly one of weight, pause, analysis"]),
        strategy("a canary pause that is not a duration", "type: canary, steps: [{pause: later}]", &["invalid pause"]),
        strategy("an analysis without a port", "type: canary, steps: [{analysis: {path: /}}]", &["an analysis needs the port to check"]),
        strategy("an unknown strategy key", "type: rolling, surge: 1", &["unknown key `surge`"]),
        deployment("a canary with a host port", "name: web\nservice: {name: web}\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1, ports: [\"8080:80\"]}\nstrategy: {type: canary, steps: [{weight: 50}]}\n", &["host port 8080 can be held by one container"]),
        deployment("a blue-green without a service", "name: web\npod:\n  containers:\n    - {name: app, image: berth-lab/web:v1}\nstrategy: {type: blue-green}\n", &["a blue-green rollout needs a service"]),
        deployment("text that is not YAML", "name: web\npod: [\n", &["`pod` must be a mapping"]),
        // Flags and selectors.
        args("-l with a saved plan", &["apply", "plan.json", "-l", "app=web"], &["-l app=web cannot narrow the saved plan plan.json"]),
        args("-l with unlock", &["unlock", "-l", "app=web"], &["-l app=web does not apply to the apply lock"]),
        args("a bad selector for validate", &["validate", "-l", "app=>web"], &["invalid selector for -l"]),
        args("a plan saved into a directory that is not there", &["plan", "-o", "/nonexistent-berth-dir/plan.json"], &["cannot write the plan to /nonexistent-berth-dir/plan.json"]),
        args("a sync every second", &["sync", "--every", "1s"], &["1s is too short: rounds are at least 5s apart"]),
        args("a selector ending in a comma", &["apply", "--auto-approve", "-l", "app=web,"], &["invalid selector for -l"]),
        args("a selector with an open list", &["apply", "--auto-approve", "-l", "env in (a"], &["invalid selector for -l"]),
        args("a selector with a bad operator", &["apply", "--auto-approve", "-l", "app=>web"], &["invalid selector for -l"]),
        args("an unknown flag", &["apply", "--auto-approve", "--yes"], &["unexpected argument '--yes'"]),
        args("a lock wait that is not a duration", &["apply", "--auto-approve", "--lock-wait", "soon"], &["invalid duration \"soon\""]),
        args("a ref that does not exist", &["apply", "--auto-approve", "--ref", "nope"], &["--ref needs a Git repository"]),
        args("--prune-volumes without --prune", &["apply", "--auto-approve", "--prune-volumes"], &["required arguments were not provided", "--prune"]),
        args("promote a deployment that does not exist", &["promote", "nope"], &["there is no deployment named nope", "the deployments are: web"]),
        args("abort a deployment that does not exist", &["abort", "nope"], &["there is no deployment named nope"]),
        args("rollback a deployment that does not exist", &["rollback", "nope"], &["there is no deployment named nope"]),
        args("a connect timeout that is not a number", &["apply", "--auto-approve", "--connect-timeout", "ten"], &["invalid duration \"ten\""]),
        args("a command timeout of nothing", &["apply", "--auto-approve", "--command-timeout", "0s"], &["0s is too short: a timeout is at least 1s"]),
        args("a pull timeout under a second", &["apply", "--auto-approve", "--pull-timeout", "500ms"], &["500ms is too short"]),
        args("a Git timeout that is not a duration", &["apply", "--auto-approve", "--git-timeout", "soon"], &["invalid duration \"soon\""]),
        args("an environment the repository does not declare", &["apply", "--auto-approve", "-e", "staging"], &["-e staging: this repository declares no environments"]),
        project("an environment override of a deployment that does not exist", "project: t-bad\nenvironments:\n  staging:\n    deployments:\n      api: {replicas: 1}\n", &["choose one with -e"]),
        args("a repository that does not exist", &["apply", "--auto-approve", "--repo", "/nonexistent/berth"], &["does not exist"]),
    ]
}

/// Every managed container of the project on each host, as `host name id state`, and its lock.
fn fleet_snapshot(project: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in HOSTS {
        let list = docker(
            h,
            &[
                "ps",
                "-a",
                "--filter",
                &format!("label=berth.project={project}"),
                "--format",
                "{{.Names}} {{.ID}} {{.State}}",
            ],
        );
        out.extend(list.lines().map(|l| format!("{h} {l}")));
        let locks = docker(
            h,
            &[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("name=berth-lock-{project}"),
            ],
        );
        out.extend(locks.lines().map(|l| format!("{h} lock {l}")));
    }
    out.sort();
    out
}

fn write_repo(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (rel, text) in BASE.iter().chain(files) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[test]
fn every_broken_input_is_named_in_the_users_words_and_changes_nothing() {
    const PROJECT: &str = "t-bad";
    let repo = Repo::new("t-bad");
    for (rel, text) in BASE {
        repo.write(rel, text);
    }
    repo.commit("base");
    repo.apply_ok(&["-q"]);
    let before = fleet_snapshot(PROJECT);
    assert_eq!(before.len(), 2, "the base deployment runs: {before:?}");

    let cases = corpus();
    let mut wrong = Vec::new();
    for c in &cases {
        let dir = tempfile::tempdir().unwrap();
        write_repo(dir.path(), c.files);
        let mut full: Vec<&str> = c.args.to_vec();
        let path = dir.path().to_str().unwrap().to_string();
        if !c.args.contains(&"--repo") {
            full.extend(["--repo", &path]);
        }
        let r = berth(&full);
        let said = format!("{} {}", r.stdout, r.said());
        if std::env::var_os("BAD_INPUT_SHOW").is_some() {
            eprintln!("{}: exit {}: {}", c.name, r.code, said.trim());
        }
        let missing: Vec<&&str> = c.says.iter().filter(|w| !said.contains(**w)).collect();
        if r.code != c.code || !missing.is_empty() || said.contains("panicked") {
            wrong.push(format!(
                "{}: exit {} (want {}), missing {missing:?}\n{r:?}",
                c.name, r.code, c.code
            ));
        }
    }
    assert_eq!(
        fleet_snapshot(PROJECT),
        before,
        "a broken input changed a host"
    );
    assert!(
        wrong.is_empty(),
        "{} of {} cases went wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n\n")
    );
    eprintln!(
        "bad input: {} cases, each refused with its words, no host changed",
        cases.len()
    );
}

/// A fault of the fleet rather than of the repository: `prepare` puts it in place on the lab
/// and `undo` takes it away again (both by the docker CLI, on hosts berth does not manage).
struct HostCase {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    /// `{dir}` stands for the case's own directory (the repository's).
    args: &'static [&'static str],
    code: i32,
    says: &'static [&'static str],
    prepare: &'static [(&'static str, &'static [&'static str])],
    undo: &'static [(&'static str, &'static [&'static str])],
}

/// The base deployment at a new revision whose container has `fields` (flow mapping entries,
/// an `image` among them or not), with a short health gate so that a failing pod is found out
/// quickly.
fn revision(fields: &str) -> Vec<(&'static str, String)> {
    let image = if fields.contains("image:") {
        String::new()
    } else {
        "image: berth-lab/web:v1, ".into()
    };
    vec![(
        "deployments/web.yaml",
        format!(
            "name: web\nlabels: {{app: web}}\nreplicas: 2\nservice: {{name: web}}\npod:\n  containers:\n    - {{name: app, {image}{fields}}}\nstrategy: {{min_ready: 2s, health_timeout: 8s}}\n"
        ),
    )]
}

fn host_corpus() -> Vec<HostCase> {
    const SQUAT: &[&str] = &[
        "run",
        "-d",
        "--name",
        "t-bad-squatter",
        "-p",
        "18081:8080",
        "berth-lab/web:v1",
    ];
    vec![
        HostCase {
            name: "unknown host keys",
            files: vec![("empty_known_hosts", String::new())],
            args: &["apply", "--auto-approve", "--known-hosts", "{dir}/empty_known_hosts"],
            code: 1,
            says: &["unknown host key", "SHA256:", "--accept-new-host-keys"],
            prepare: &[],
            undo: &[],
        },
        HostCase {
            name: "a host that does not answer",
            files: vec![(
                "inventory.yaml",
                "hosts:\n  - {name: h1, address: 198.18.0.11, labels: {role: web}}\n  - {name: h2, address: 198.18.0.12, labels: {role: web}}\n  - {name: h9, address: 198.18.0.99, labels: {role: web}}\n".into(),
            )],
            args: &["apply", "--auto-approve", "--connect-timeout", "2"],
            code: 1,
            says: &["h9 is unreachable", "--allow-unreachable"],
            prepare: &[],
            undo: &[],
        },
        HostCase {
            name: "a host whose engine socket is not there",
            files: vec![(
                "inventory.yaml",
                "hosts:\n  - {name: h1, address: 198.18.0.11, labels: {role: web}}\n  - {name: h2, address: 198.18.0.12, labels: {role: web}, docker_socket: /run/nowhere.sock}\n".into(),
            )],
            args: APPLY,
            code: 1,
            says: &["h2 is unreachable", "/run/nowhere.sock"],
            prepare: &[],
            undo: &[],
        },
        HostCase {
            name: "an image that does not exist",
            files: revision("image: \"198.18.0.1:5000/berth-lab/web:no-such-tag\""),
            args: APPLY,
            code: 3,
            says: &["h1: pulling 198.18.0.1:5000/berth-lab/web:no-such-tag", "not found", "rolled back: the failed pods were removed and the old pods keep serving"],
            prepare: &[],
            undo: &[],
        },
        HostCase {
            name: "a container that crashes on start",
            files: revision("command: [sh, -c, \"echo broken; exit 7\"]"),
            args: APPLY,
            code: 3,
            // (the gate may see it restarting, or exited before it joined the service)
            says: &["failed its health gate", "exit code 7", "last log lines", "broken", "rolling back"],
            prepare: &[],
            undo: &[],
        },
        HostCase {
            name: "a host port another container holds",
            files: revision("ports: [\"18081:8080\"]"),
            args: APPLY,
            code: 1,
            says: &[
                "unmanaged container t-bad-squatter holds host port 18081/tcp that web publishes",
                "remove or rename the unmanaged containers",
            ],
            prepare: &[("h1", SQUAT), ("h2", SQUAT)],
            undo: &[
                ("h1", &["rm", "-f", "t-bad-squatter"]),
                ("h2", &["rm", "-f", "t-bad-squatter"]),
            ],
        },
    ]
}

#[test]
fn every_host_fault_is_named_and_the_running_pods_stay_as_they_were() {
    const PROJECT: &str = "t-hostbad";
    let own = format!("project: {PROJECT}\n");
    let repo = Repo::new(PROJECT);
    for (rel, text) in BASE {
        repo.write(rel, text);
    }
    repo.write("berth.yaml", &own);
    repo.commit("base");
    repo.apply_ok(&["-q"]);
    let before = fleet_snapshot(PROJECT);
    assert_eq!(before.len(), 2, "the base deployment runs: {before:?}");

    let cases = host_corpus();
    let mut wrong = Vec::new();
    for c in &cases {
        for (h, args) in c.prepare {
            docker(h, args);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        let files: Vec<(&str, &str)> = c.files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        write_repo(dir.path(), &files);
        std::fs::write(dir.path().join("berth.yaml"), &own).unwrap();
        let mut full: Vec<String> = c.args.iter().map(|a| a.replace("{dir}", &path)).collect();
        full.extend(["--repo".into(), path.clone()]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let r = berth(&full);
        for (h, args) in c.undo {
            docker(h, args);
        }
        let said = format!("{} {}", r.stdout, r.said());
        if std::env::var_os("BAD_INPUT_SHOW").is_some() {
            eprintln!("{}: exit {}: {}", c.name, r.code, said.trim());
        }
        let missing: Vec<&&str> = c.says.iter().filter(|w| !said.contains(**w)).collect();
        let after = fleet_snapshot(PROJECT);
        if r.code != c.code || !missing.is_empty() || said.contains("panicked") || after != before {
            wrong.push(format!(
                "{}: exit {} (want {}), missing {missing:?}, pods before {before:?} after {after:?}\n{r:?}",
                c.name, r.code, c.code
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} host faults went wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n\n")
    );
    eprintln!(
        "host faults: {} cases, each named, the running pods untouched",
        cases.len()
    );
}
