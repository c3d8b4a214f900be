//! Names berth gives to what it creates, derived from the project and deployment names.

/// The alias a blue-green's new set answers to before its promotion.
pub fn preview_alias(service: &str) -> String {
    format!("{service}-preview")
}
