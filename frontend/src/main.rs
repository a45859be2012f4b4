//! The Gatekeeper browser client: mounts the app; everything else lives in the modules.

use gatekeeper_frontend::App;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
