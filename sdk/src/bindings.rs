//! Generated guest bindings for `lt:plugin@0.3.0` (world `plugin`). Private to the SDK:
//! plugins use the re-exports and [`crate::export_plugin!`].

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "export_raw",
    default_bindings_module: "lthost_sdk::bindings",
});
