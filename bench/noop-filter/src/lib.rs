//! A Proxy-Wasm HTTP filter that does nothing: every callback returns
//! `Continue`. `make bench` measures it to know what any Rust Proxy-Wasm
//! filter costs before it does any work (the floor the filters are held to).
//!
//! With a pluginConfig `"<call> <n>"` it also makes one kind of host call
//! n times per request in `on_http_request_headers` (or, for
//! `set_property_log`, in `on_log`): `bench/instructions.py` subtracts the
//! floor and divides by n to price each host call the filters make.
//!
//! `trap` makes every request trap the VM (a Wasm `unreachable`): the
//! observability tests use it to make Envoy reload a crashed VM.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{ContextType, MapType, MetricType};

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { probe: None, counter: 0 })
        });
    }}

    #[derive(Clone, Copy)]
    enum Call {
        GetHeaders,
        GetHeader,
        SetHeader,
        RemoveHeader,
        SetProperty,
        SetPropertyLog,
        GetProperty,
        Counter,
        Time,
        Trap,
    }

    struct Root {
        probe: Option<(Call, u32)>,
        counter: u32,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let config = self.get_plugin_configuration().unwrap_or_default();
            let text = String::from_utf8_lossy(&config);
            let mut words = text.split_whitespace();
            let call = match words.next() {
                Some("get_headers") => Some(Call::GetHeaders),
                Some("get_header") => Some(Call::GetHeader),
                Some("set_header") => Some(Call::SetHeader),
                Some("remove_header") => Some(Call::RemoveHeader),
                Some("set_property") => Some(Call::SetProperty),
                Some("set_property_log") => Some(Call::SetPropertyLog),
                Some("get_property") => Some(Call::GetProperty),
                Some("counter") => Some(Call::Counter),
                Some("time") => Some(Call::Time),
                Some("trap") => Some(Call::Trap),
                _ => None,
            };
            let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            self.probe = call.map(|c| (c, n));
            self.counter =
                hostcalls::define_metric(MetricType::Counter, "bench_probe_total").unwrap_or(0);
            true
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Stream {
                probe: self.probe,
                counter: self.counter,
            }))
        }
    }

    struct Stream {
        probe: Option<(Call, u32)>,
        counter: u32,
    }

    impl Stream {
        fn run(&self, at_log: bool) {
            let Some((call, n)) = self.probe else { return };
            if matches!(call, Call::Trap) && !at_log {
                core::arch::wasm32::unreachable();
            }
            if at_log != matches!(call, Call::SetPropertyLog) {
                return;
            }
            for i in 0..n {
                let key = format!("bench_{i}");
                let _ = match call {
                    Call::GetHeaders => {
                        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map(drop)
                    }
                    Call::GetHeader => {
                        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-api-key")
                            .map(drop)
                    }
                    Call::SetHeader => hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        &format!("x-bench-{i}"),
                        Some("value-1234"),
                    ),
                    Call::RemoveHeader => hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        &format!("x-bench-{i}"),
                        None,
                    ),
                    Call::SetProperty | Call::SetPropertyLog => {
                        hostcalls::set_property(vec![&key], Some(b"value-1234"))
                    }
                    Call::GetProperty => {
                        hostcalls::get_property(vec!["response", "code"]).map(drop)
                    }
                    Call::Counter => hostcalls::increment_metric(self.counter, 1),
                    Call::Time => hostcalls::get_current_time().map(drop),
                    Call::Trap => Ok(()),
                };
            }
        }
    }

    impl Context for Stream {}

    impl HttpContext for Stream {
        fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> proxy_wasm::types::Action {
            self.run(false);
            proxy_wasm::types::Action::Continue
        }

        fn on_log(&mut self) {
            self.run(true);
        }
    }
}
