//! Shared plugins as artifacts: a manifest inside the component (who made it, what it
//! asks for), signatures following the WebAssembly signatures proposal (wasmsign2), the
//! trust policy that decides whether a plugin may run, and `lthost inspect`.

pub mod inspect;
pub mod manifest;
pub mod sections;
pub mod signing;
pub mod trust;
