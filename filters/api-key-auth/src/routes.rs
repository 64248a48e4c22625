//! Which paths skip authentication and which routes need a role or an
//! organization. Prefixes match like Envoy's route `prefix` (plain string
//! prefix, case-sensitive), on the path without its query.
//!
//! Paths are attacker-controlled: `/healthz/../admin` must not skip auth and
//! `/%61dmin` must not slip past an `/admin` rule. So a path is normalized
//! (dot segments, `//`, percent-encoded unreserved characters and slashes,
//! backslashes) before rules are matched, and a path skips authentication only
//! when it already is in that normal form.

use crate::config::{PathMatch, RouteRule};
use mesh_core::identity::Identity;

#[derive(Debug, Clone, Default)]
pub struct Routes {
    skip: Vec<PathMatch>,
    rules: Vec<RouteRule>,
}

impl Routes {
    pub fn new(skip: &[PathMatch], rules: &[RouteRule]) -> Self {
        Self {
            skip: skip.to_vec(),
            rules: rules.to_vec(),
        }
    }

    /// True when `raw_path` (`:path`, query included) needs no credential.
    pub fn skips(&self, raw_path: &str) -> bool {
        if self.skip.is_empty() {
            return false;
        }
        let Some(path) = normal_form(raw_path) else {
            return false;
        };
        self.skip.iter().any(|m| match (&m.exact, &m.prefix) {
            (Some(exact), _) => path == exact,
            (None, Some(prefix)) => path.starts_with(prefix.as_str()),
            (None, None) => false,
        })
    }

    /// `true` when `identity` may use `method raw_path`: the first rule whose
    /// prefix and method match decides; no matching rule allows.
    pub fn permits(&self, method: &str, raw_path: &str, identity: &Identity) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let path = normalize(path_only(raw_path));
        let Some(rule) = self.rules.iter().find(|r| {
            covers(&r.prefix, &path)
                && (r.methods.is_empty() || r.methods.iter().any(|m| m == method))
        }) else {
            return true;
        };
        (rule.allowed_roles.is_empty() || rule.allowed_roles.contains(&identity.role))
            && (rule.allowed_orgs.is_empty() || rule.allowed_orgs.contains(&identity.org_id))
    }
}

/// A rule's prefix covers the paths it starts, and a prefix ending in `/`
/// also its collection path: `/organizations/` guards `POST /organizations`
/// too, which is what a rule written for a resource tree means (the shipped
/// owner-only rule let a user key create organizations, issue 12).
fn covers(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        || prefix
            .strip_suffix('/')
            .is_some_and(|collection| !collection.is_empty() && path == collection)
}

pub use mesh_core::path::{normal_form, normalize, path_only};

#[cfg(test)]
mod tests {
    use super::*;

    fn id(role: &str, org: &str) -> Identity {
        Identity {
            org_id: org.into(),
            key_id: "k".into(),
            plan: "pro".into(),
            role: role.into(),
            user_id: None,
            scopes: None,
        }
    }

    fn routes() -> Routes {
        Routes::new(
            &[
                PathMatch {
                    exact: Some("/healthz".into()),
                    prefix: None,
                },
                PathMatch {
                    exact: None,
                    prefix: Some("/public/".into()),
                },
            ],
            &[
                RouteRule {
                    prefix: "/admin".into(),
                    methods: vec![],
                    allowed_roles: vec!["owner".into()],
                    allowed_orgs: vec![],
                },
                RouteRule {
                    prefix: "/mcp".into(),
                    methods: vec!["DELETE".into()],
                    allowed_roles: vec!["owner".into(), "moderator".into()],
                    allowed_orgs: vec!["acme".into()],
                },
            ],
        )
    }

    #[test]
    fn normal_form() {
        for (raw, want) in [
            ("/", "/"),
            ("", "/"),
            ("/a//b/./c/", "/a/b/c/"),
            ("/healthz/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/x/..%2Fadmin", "/admin"),
            ("/x/%2e%2E/admin", "/admin"),
            ("/x\\..\\admin", "/admin"),
            ("/../../etc", "/etc"),
            ("/a%20b", "/a%20b"),
            ("/%zz", "/%zz"),
            ("/é", "/é"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }

    #[test]
    fn skip_paths_only_in_normal_form() {
        let r = routes();
        assert!(r.skips("/healthz"));
        assert!(r.skips("/healthz?verbose=1"));
        assert!(r.skips("/public/logo.png"));
        assert!(!r.skips("/healthz/"));
        assert!(!r.skips("/healthzz"));
        assert!(!r.skips("/healthz/../admin"));
        assert!(!r.skips("/public/../admin"));
        assert!(!r.skips("/public/%2e%2e/admin"));
        assert!(!r.skips("//healthz"));
        assert!(!r.skips("/mcp"));
        assert!(!Routes::default().skips("/healthz"));
    }

    #[test]
    fn a_trailing_slash_rule_guards_its_collection_path() {
        let r = Routes::new(
            &[],
            &[RouteRule {
                prefix: "/organizations/".into(),
                methods: vec!["POST".into()],
                allowed_roles: vec!["owner".into()],
                allowed_orgs: vec![],
            }],
        );
        for path in [
            "/organizations",
            "/organizations/",
            "/organizations/o-1",
            "/organizations?x=1",
        ] {
            assert!(!r.permits("POST", path, &id("user", "acme")), "{path}");
            assert!(r.permits("POST", path, &id("owner", "acme")), "{path}");
        }
        assert!(r.permits("POST", "/organizationsx", &id("user", "acme")));
        assert!(r.permits("GET", "/organizations", &id("user", "acme")));
    }

    #[test]
    fn rules_decide_by_first_match() {
        let r = routes();
        assert!(r.permits("GET", "/admin/users", &id("owner", "globex")));
        assert!(!r.permits("GET", "/admin/users", &id("user", "acme")));
        assert!(!r.permits("GET", "/x/../admin", &id("user", "acme")));
        assert!(!r.permits("GET", "/%61dmin", &id("user", "acme")));
        // Method-scoped rule: DELETE needs owner/moderator of acme; POST is free.
        assert!(r.permits("POST", "/mcp", &id("user", "globex")));
        assert!(r.permits("DELETE", "/mcp", &id("moderator", "acme")));
        assert!(!r.permits("DELETE", "/mcp", &id("moderator", "globex")));
        assert!(!r.permits("DELETE", "/mcp", &id("user", "acme")));
        assert!(r.permits("GET", "/other", &id("user", "x")));
    }
}
