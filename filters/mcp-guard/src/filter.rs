//! The standalone mcp-guard module: the glue around this crate's stage.

proxy_wasm::main! {{
    mesh_host::glue::install(crate::stage::build);
}}
