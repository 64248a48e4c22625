//! The authorization decision: which rule covers an MCP call, and whether
//! it lets this caller in.

use crate::config::{Config, Effect, Rule, Subject};
use crate::glob;
use mesh_core::mcp::Call;

/// Who is calling, as the verified identity headers say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub role: Option<String>,
    pub plan: Option<String>,
    pub org: Option<String>,
    pub key_id: Option<String>,
    pub scopes: Vec<String>,
}

/// The decision on one call, and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The rule's name (`rules[<i>]` when unnamed), or `default`.
    pub rule: String,
}

#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<(String, Rule)>,
    default: Effect,
}

impl Rules {
    pub fn new(config: &Config) -> Self {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
                    r.clone(),
                )
            })
            .collect();
        Self {
            rules,
            default: config.default,
        }
    }

    /// True when no rule can refuse anything: the stage skips deciding.
    pub fn allow_all(&self) -> bool {
        self.rules.is_empty() && self.default == Effect::Allow
    }

    /// The first rule whose target covers `call` decides; none: the default.
    pub fn decide(&self, call: &Call, caller: &Caller) -> Verdict {
        for (name, rule) in &self.rules {
            if !covers(rule, call) {
                continue;
            }
            let allowed = match (&rule.allow, &rule.deny) {
                (Some(subject), _) => names(subject, caller),
                (_, Some(subject)) => !names(subject, caller),
                (None, None) => true,
            };
            return Verdict {
                allowed,
                rule: name.clone(),
            };
        }
        Verdict {
            allowed: self.default == Effect::Allow,
            rule: "default".into(),
        }
    }
}

/// The rule's target covers the call: its method is listed (or none is),
/// and when the rule lists names, the call names one of the right kind.
fn covers(rule: &Rule, call: &Call) -> bool {
    if !rule.methods.is_empty() && !rule.methods.iter().any(|m| glob::matches(m, &call.method)) {
        return false;
    }
    let mut lists = rule
        .targets()
        .into_iter()
        .filter(|(_, _, v)| !v.is_empty())
        .peekable();
    if lists.peek().is_none() {
        return true;
    }
    lists.any(|(_, method, patterns)| {
        call.method == method
            && call
                .name
                .as_deref()
                .is_some_and(|name| patterns.iter().any(|p| glob::matches(p, name)))
    })
}

fn names(subject: &Subject, caller: &Caller) -> bool {
    let one = |list: &[String], value: &Option<String>| {
        list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
    };
    one(&subject.roles, &caller.role)
        && one(&subject.plans, &caller.plan)
        && one(&subject.orgs, &caller.org)
        && one(&subject.key_ids, &caller.key_id)
        && (subject.scopes.is_empty() || caller.scopes.iter().any(|s| subject.scopes.contains(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    fn rules(json: &str) -> Rules {
        Rules::new(&load::<Config>(json.as_bytes()).unwrap())
    }

    fn call(method: &str, name: Option<&str>) -> Call {
        Call {
            method: method.into(),
            name: name.map(str::to_string),
        }
    }

    fn role(r: &str) -> Caller {
        Caller {
            role: Some(r.into()),
            ..Caller::default()
        }
    }

    const DEBATE: &str = r#"{"rules": [
        {"name": "rounds", "tools": ["run_debate_round"], "allow": {"roles": ["owner", "moderator"]}},
        {"name": "free-no-deletes", "tools": ["delete_*"], "deny": {"plans": ["free"]}},
        {"name": "secret-prompts", "prompts": ["judge_*"], "allow": {"scopes": ["debates:judge"]}},
        {"name": "transcripts", "resources": ["debate://*/transcript"], "deny": {"roles": ["guest"]}}
    ]}"#;

    #[test]
    fn an_allow_rule_lets_in_only_its_subject() {
        let r = rules(DEBATE);
        let round = call("tools/call", Some("run_debate_round"));
        assert!(r.decide(&round, &role("owner")).allowed);
        assert!(r.decide(&round, &role("moderator")).allowed);
        let v = r.decide(&round, &role("user"));
        assert_eq!((v.allowed, v.rule.as_str()), (false, "rounds"));
        assert!(!r.decide(&round, &Caller::default()).allowed);
    }

    #[test]
    fn a_deny_rule_refuses_only_its_subject() {
        let r = rules(DEBATE);
        let delete = call("tools/call", Some("delete_debate"));
        let free = Caller {
            plan: Some("free".into()),
            ..role("owner")
        };
        assert!(!r.decide(&delete, &free).allowed);
        assert!(r.decide(&delete, &role("owner")).allowed);
    }

    #[test]
    fn prompts_resources_and_scopes() {
        let r = rules(DEBATE);
        let judge = call("prompts/get", Some("judge_round"));
        let scoped = Caller {
            scopes: vec!["debates:read".into(), "debates:judge".into()],
            ..role("user")
        };
        assert!(r.decide(&judge, &scoped).allowed);
        assert!(!r.decide(&judge, &role("owner")).allowed);
        let read = call("resources/read", Some("debate://7/transcript"));
        assert!(!r.decide(&read, &role("guest")).allowed);
        assert!(r.decide(&read, &role("user")).allowed);
    }

    #[test]
    fn a_tool_pattern_does_not_cover_a_prompt_of_that_name() {
        let r = rules(DEBATE);
        let v = r.decide(
            &call("prompts/get", Some("run_debate_round")),
            &role("user"),
        );
        assert_eq!((v.allowed, v.rule.as_str()), (true, "default"));
    }

    #[test]
    fn methods_and_the_default() {
        let r = rules(
            r#"{"default": "deny", "rules": [
                {"methods": ["initialize", "notifications/*", "ping", "tools/list"], "allow": {}},
                {"methods": ["tools/call"], "tools": ["get_*"], "allow": {}}
            ]}"#,
        );
        assert!(
            r.decide(&call("initialize", None), &Caller::default())
                .allowed
        );
        assert!(
            r.decide(&call("notifications/initialized", None), &Caller::default())
                .allowed
        );
        assert!(
            r.decide(&call("tools/call", Some("get_debate")), &Caller::default())
                .allowed
        );
        let v = r.decide(&call("tools/call", Some("set_debate")), &Caller::default());
        assert_eq!((v.allowed, v.rule.as_str()), (false, "default"));
        // A call without a name is not covered by a rule that lists names.
        assert!(
            !r.decide(&call("tools/call", None), &Caller::default())
                .allowed
        );
        assert!(!rules(r#"{"default": "deny"}"#).allow_all());
        assert!(rules("{}").allow_all());
    }

    #[test]
    fn unnamed_rules_show_their_index() {
        let r = rules(r#"{"rules": [{"tools": ["x"], "deny": {}}]}"#);
        assert_eq!(
            r.decide(&call("tools/call", Some("x")), &Caller::default())
                .rule,
            "rules[0]"
        );
    }

    #[test]
    fn every_field_of_a_subject_must_match() {
        let r = rules(
            r#"{"rules": [{"tools": ["x"], "allow": {"roles": ["owner"], "orgs": ["acme"], "key_ids": ["k1"]}}]}"#,
        );
        let x = call("tools/call", Some("x"));
        let mut who = Caller {
            org: Some("acme".into()),
            key_id: Some("k1".into()),
            ..role("owner")
        };
        assert!(r.decide(&x, &who).allowed);
        who.key_id = Some("k2".into());
        assert!(!r.decide(&x, &who).allowed);
    }
}
