// Starts the browser client. A file of its own, not an inline script: the server's
// Content-Security-Policy allows scripts from its own origin only.
import init from '/gatekeeper_frontend.js';
init({ module_or_path: '/gatekeeper_frontend_bg.wasm' });
