//! The standalone debate-access-log module: the glue around this crate's stage.

proxy_wasm::main! {{
    mesh_host::glue::install(crate::stage::build);
}}
