//! The router's routes as its source defines them, so tests can hold a table (`json_errors`) or
//! a document (`openapi`) against every route there is.

use std::collections::BTreeSet;

/// `(method, path)` of every `.route(…)` in the router sources (`shared/src/http`), `any` read
/// as POST (the one method the receiver accepts webhooks on).
pub fn routes_in_source() -> BTreeSet<(String, String)> {
    let sources = [
        include_str!("../../shared/src/http/mod.rs"),
        include_str!("../../shared/src/http/admin.rs"),
        include_str!("../../shared/src/http/console.rs"),
    ];
    let mut found = BTreeSet::new();
    for source in sources {
        for segment in source.split(".route(").skip(1) {
            // The route's own text: up to the next builder call.
            let end = [
                ".route_layer(",
                ".fallback(",
                ".method_not_allowed_fallback(",
                "\n}",
            ]
            .iter()
            .filter_map(|stop| segment.find(stop))
            .min()
            .unwrap_or(segment.len());
            let segment = &segment[..end];
            let path = segment.split('"').nth(1).expect("a route path literal");
            let methods = [
                ("get(", "GET"),
                ("post(", "POST"),
                ("patch(", "PATCH"),
                ("put(", "PUT"),
                ("delete(", "DELETE"),
                ("any(", "POST"),
            ];
            for (call, method) in methods {
                let called = segment.match_indices(call).any(|(at, _)| {
                    // `get(` itself, not the end of `forget(`
                    !segment[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    found.insert((method.to_string(), path.to_string()));
                }
            }
        }
    }
    found
}
