//! Host bindings for the `cni-plugin` world (wit/plugin.wit): one Rust trait
//! per WIT interface, implemented in `imports/`.

wasmtime::component::bindgen!({
    world: "cni-plugin",
    path: "../wit",
    // Every import may trap: a host bug (a dangling resource handle, say)
    // must stop the guest rather than pose as a capability error.
    imports: { default: trappable },
    // `result<T, types.error>` becomes `Result<T, CallError>` on the host,
    // so implementations use `?` on capability errors directly.
    trappable_error_type: {
        "cni-wasm:plugin/types.error" => crate::imports::CallError,
    },
    with: {
        "cni-wasm:plugin/namespaces.netns": crate::imports::namespaces::NetnsHandle,
        "cni-wasm:plugin/state.file-lock": crate::imports::state::LockHandle,
    },
});
