//! The Gatekeeper browser client. The Leptos single-page application lands here; until then the API's
//! JSON endpoints and the README's `curl` journey are the way in.
fn main() {}
