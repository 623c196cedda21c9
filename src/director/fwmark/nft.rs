//! `nft -j list ruleset`, through the `nftables` crate's schema types. Each object of the
//! document is read on its own, so that one the schema does not know spoils only itself.

use std::collections::HashMap;
use std::net::IpAddr;

use lb_forward::Protocol;
use nftables::expr::{Expression, MetaKey, NamedExpression, Payload, SetItem};
use nftables::schema::{NfListObject, NfObject};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfFamily, NfHook};

use super::{Chain, Conditions, Marks, parse_number, range_prefixes};

/// The translation of an nft JSON document, and the iptables-nft tables in it: (IPv6, table
/// name) of each table whose rules use xt extensions, to be read from `iptables-save` /
/// `ip6tables-save` instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftTranslation {
    /// The rules translated from the JSON.
    pub marks: Marks,
    /// Tables to read with iptables-save.
    pub iptables_tables: Vec<(bool, String)>,
}

type TableId = (String, String);

fn family_name(f: NfFamily) -> &'static str {
    match f {
        NfFamily::IP => "ip",
        NfFamily::IP6 => "ip6",
        NfFamily::INet => "inet",
        NfFamily::ARP => "arp",
        NfFamily::Bridge => "bridge",
        NfFamily::NetDev => "netdev",
    }
}

/// Translates `nft -j list ruleset` output (see the module doc for what is translated).
pub fn from_nft_json(json: &str) -> NftTranslation {
    let mut out = NftTranslation::default();
    let warn = |out: &mut NftTranslation, w: String| out.marks.warnings.push(w);
    let doc: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            warn(&mut out, format!("nft ruleset: not JSON ({e})"));
            return out;
        }
    };
    let Some(items) = doc.get("nftables").and_then(|v| v.as_array()) else {
        warn(&mut out, "nft ruleset: no \"nftables\" array".into());
        return out;
    };
    let mut chains: HashMap<(TableId, String), (Option<NfHook>, i32)> = HashMap::new();
    let mut chain_order: Vec<(TableId, String)> = Vec::new();
    let mut sets: HashMap<(TableId, String), Vec<Expression<'static>>> = HashMap::new();
    let mut rules = Vec::new();
    for item in items {
        match serde_json::from_value::<NfObject<'static>>(item.clone()) {
            Ok(NfObject::ListObject(NfListObject::Chain(c))) => {
                let id = (
                    (family_name(c.family).to_owned(), c.table.to_string()),
                    c.name.to_string(),
                );
                chains.insert(id.clone(), (c.hook, c.prio.unwrap_or(0)));
                chain_order.push(id);
            }
            Ok(NfObject::ListObject(NfListObject::Set(s))) => {
                let id = (
                    (family_name(s.family).to_owned(), s.table.to_string()),
                    s.name.to_string(),
                );
                sets.insert(id, s.elem.map(|e| e.into_owned()).unwrap_or_default());
            }
            Ok(NfObject::ListObject(NfListObject::Rule(r))) => rules.push(Ok(r)),
            Ok(_) => {}
            Err(e) => {
                if let Some(rule) = item.get("rule") {
                    rules.push(Err((rule.clone(), e.to_string())));
                }
            }
        }
    }
    // iptables-nft tables: nft's JSON shows their xt extensions without arguments.
    let mut xt_tables: Vec<TableId> = Vec::new();
    for r in rules.iter().flatten() {
        if r.expr.iter().any(|s| matches!(s, Statement::XT(_))) {
            let id = (family_name(r.family).to_owned(), r.table.to_string());
            if !xt_tables.contains(&id) {
                xt_tables.push(id);
            }
        }
    }
    for (family, table) in &xt_tables {
        match family.as_str() {
            "ip" => out.iptables_tables.push((false, table.clone())),
            "ip6" => out.iptables_tables.push((true, table.clone())),
            _ => {}
        }
    }
    // Prerouting chains in the order the kernel runs them: by priority, then as listed.
    let mut prerouting: Vec<&(TableId, String)> = chain_order
        .iter()
        .filter(|id| {
            chains
                .get(id)
                .is_some_and(|(h, _)| *h == Some(NfHook::Prerouting))
                && ["ip", "ip6", "inet"].contains(&id.0.0.as_str())
        })
        .collect();
    prerouting.sort_by_key(|id| chains.get(id).map_or(0, |(_, p)| *p));
    let mut by_chain: HashMap<(TableId, String), Vec<&nftables::schema::Rule<'static>>> =
        HashMap::new();
    for r in rules.iter().flatten() {
        let id = (
            (family_name(r.family).to_owned(), r.table.to_string()),
            r.chain.to_string(),
        );
        by_chain.entry(id).or_default().push(r);
    }
    for id in &prerouting {
        if xt_tables.contains(&id.0) {
            continue;
        }
        let mut chain = Chain::default();
        for rule in by_chain.get(id).into_iter().flatten() {
            translate(rule, &sets, &mut chain, &mut out.marks);
        }
    }
    // Marks set anywhere else are not seen by the translation: say so.
    for (id, list) in &by_chain {
        if prerouting.contains(&id) || xt_tables.contains(&id.0) {
            continue;
        }
        for rule in list {
            if let Some(mark) = sets_mark(rule) {
                let why = match chains.get(id) {
                    Some((Some(_), _)) => "a chain hooked elsewhere than prerouting",
                    _ => "a chain reached by jump or goto",
                };
                out.marks.warnings.push(format!(
                    "{} sets mark {mark} in {why}: not translated",
                    name(rule)
                ));
            }
        }
    }
    for bad in rules.iter().filter_map(|r| r.as_ref().err()) {
        let (rule, e) = bad;
        let field = |k: &str| rule.get(k).map(|v| v.to_string()).unwrap_or_default();
        out.marks.warnings.push(format!(
            "nft rule {} {} {} handle {}: not understood ({e}); if it sets a mark, it is not translated",
            field("family").trim_matches('"'),
            field("table").trim_matches('"'),
            field("chain").trim_matches('"'),
            field("handle")
        ));
    }
    out
}

fn name(rule: &nftables::schema::Rule<'_>) -> String {
    let mut s = format!(
        "nft rule {} {} {} handle {}",
        family_name(rule.family),
        rule.table,
        rule.chain,
        rule.handle.map_or("?".into(), |h| h.to_string())
    );
    if let Some(c) = &rule.comment {
        s.push_str(&format!(" ({c})"));
    }
    s
}

/// The mark a rule sets, if it sets one (constant or not: `Some(0)` for an expression).
fn sets_mark(rule: &nftables::schema::Rule<'_>) -> Option<u32> {
    rule.expr.iter().find_map(|s| match s {
        Statement::Mangle(m) if is_meta(&m.key, MetaKey::Mark) => Some(match m.value {
            Expression::Number(n) => n,
            _ => 0,
        }),
        _ => None,
    })
}

fn is_meta(e: &Expression<'_>, key: MetaKey) -> bool {
    matches!(e, Expression::Named(NamedExpression::Meta(m)) if m.key == key)
}

/// Translates one rule of a prerouting chain into `marks`.
fn translate(
    rule: &nftables::schema::Rule<'_>,
    sets: &HashMap<(TableId, String), Vec<Expression<'static>>>,
    chain: &mut Chain,
    marks: &mut Marks,
) {
    let table = (family_name(rule.family).to_owned(), rule.table.to_string());
    let mut cond = Conditions::default();
    match rule.family {
        NfFamily::IP => cond.ipv6 = Some(false),
        NfFamily::IP6 => cond.ipv6 = Some(true),
        _ => {}
    }
    let mut mark: Option<Result<u32, String>> = None;
    let mut problem: Option<String> = None;
    let mut ends = false;
    for stmt in rule.expr.iter() {
        let result = match stmt {
            Statement::Match(m) => condition(m, &table, sets, &mut cond),
            Statement::Mangle(m) if is_meta(&m.key, MetaKey::Mark) => {
                mark = Some(match m.value {
                    Expression::Number(n) => Ok(n),
                    _ => Err("sets the mark from an expression".to_owned()),
                });
                Ok(())
            }
            Statement::Counter(_) | Statement::Log(_) | Statement::Mangle(_) => Ok(()),
            Statement::Continue(_) | Statement::Jump(_) => Ok(()),
            Statement::Accept(_)
            | Statement::Drop(_)
            | Statement::Return(_)
            | Statement::Goto(_)
            | Statement::Reject(_)
            | Statement::Queue(_) => {
                ends = true;
                Ok(())
            }
            other => Err(format!("has a {} statement", statement_name(other))),
        };
        if let Err(e) = result {
            problem.get_or_insert(e);
        }
    }
    let here = name(rule);
    let shadowed = chain.ended_by.clone();
    chain.verdict(&here, ends);
    let Some(mark) = mark else {
        return;
    };
    let Some(mark) = marks.settable(&here, mark) else {
        return;
    };
    if let Some(e) = problem {
        marks
            .warnings
            .push(format!("{here} sets mark {mark} but {e}: not translated"));
        return;
    }
    if let Some(by) = shadowed {
        marks.warnings.push(super::shadow_warning(&by, &here, mark));
    }
    marks.add(here, mark, cond.keys());
}

fn statement_name(s: &Statement<'_>) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.keys().next().cloned()))
        .unwrap_or_else(|| "statement".into())
}

/// Applies one match statement.
fn condition(
    m: &Match<'_>,
    table: &TableId,
    sets: &HashMap<(TableId, String), Vec<Expression<'static>>>,
    cond: &mut Conditions,
) -> Result<(), String> {
    if !matches!(m.op, Operator::EQ | Operator::IN) {
        return Err(format!(
            "matches with {}",
            serde_json::to_value(m.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "another operator".into())
        ));
    }
    match &m.left {
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(f))) => {
            match (f.protocol.as_ref(), f.field.as_ref()) {
                (proto @ ("ip" | "ip6"), "daddr") => {
                    let v6 = proto == "ip6";
                    cond.family(v6)?;
                    let mut dst = Vec::new();
                    for v in flatten(&m.right, table, sets)? {
                        dst.extend(addresses(&v)?);
                    }
                    if dst.iter().any(|(a, _)| a.is_ipv6() != v6) {
                        return Err(format!("matches {proto} daddr with another family"));
                    }
                    cond.destinations(dst)
                }
                ("ip", "protocol") | ("ip6", "nexthdr") => {
                    cond.protocols(protocols(&flatten(&m.right, table, sets)?)?);
                    Ok(())
                }
                (proto @ ("tcp" | "udp"), "dport") => {
                    cond.protocols(vec![if proto == "tcp" {
                        Protocol::Tcp
                    } else {
                        Protocol::Udp
                    }]);
                    cond.ports(ports(&flatten(&m.right, table, sets)?)?)
                }
                ("th", "dport") => cond.ports(ports(&flatten(&m.right, table, sets)?)?),
                (p, f) => Err(format!("matches {p} {f}")),
            }
        }
        Expression::Named(NamedExpression::Meta(meta)) => match meta.key {
            MetaKey::L4proto => {
                cond.protocols(protocols(&flatten(&m.right, table, sets)?)?);
                Ok(())
            }
            MetaKey::Nfproto => match flatten(&m.right, table, sets)?.as_slice() {
                [Expression::String(f)] if f == "ipv4" => cond.family(false),
                [Expression::String(f)] if f == "ipv6" => cond.family(true),
                _ => Err("matches meta nfproto with several families".into()),
            },
            MetaKey::Mark => Err("matches the mark (set conditionally on another mark)".into()),
            MetaKey::Iif | MetaKey::Iifname | MetaKey::Iiftype | MetaKey::Iifgroup => {
                Err("matches the input interface".into())
            }
            other => Err(format!(
                "matches meta {}",
                format!("{other:?}").to_lowercase()
            )),
        },
        _ => Err("matches an expression other than the destination, protocol or port".into()),
    }
}

/// The values of a right-hand side: sets (anonymous, named, `elem`) and lists flattened.
fn flatten<'a>(
    e: &'a Expression<'a>,
    table: &TableId,
    sets: &'a HashMap<(TableId, String), Vec<Expression<'static>>>,
) -> Result<Vec<Expression<'a>>, String> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            Expression::String(s) if s.starts_with('@') => {
                let set = sets
                    .get(&(table.clone(), s[1..].to_owned()))
                    .ok_or_else(|| format!("refers to set {s}, which is not in the ruleset"))?;
                stack.extend(set.iter().rev());
            }
            Expression::List(items) => stack.extend(items.iter().rev()),
            Expression::Named(NamedExpression::Set(items)) => {
                for item in items.iter().rev() {
                    match item {
                        SetItem::Element(x) => stack.push(x),
                        _ => return Err("matches a map".into()),
                    }
                }
            }
            Expression::Named(NamedExpression::Elem(el)) => stack.push(&el.val),
            other => out.push(other.clone()),
        }
        if out.len() + stack.len() > 64 * super::MAX_KEYS_PER_RULE {
            return Err("matches a set too large to translate".into());
        }
    }
    Ok(out)
}

fn addresses(e: &Expression<'_>) -> Result<Vec<(IpAddr, u8)>, String> {
    let ip = |e: &Expression<'_>| -> Result<IpAddr, String> {
        match e {
            Expression::String(s) => s
                .parse::<IpAddr>()
                .map_err(|_| format!("matches the destination {s}, not an address")),
            _ => Err("matches the destination with an expression".into()),
        }
    };
    match e {
        Expression::String(_) => {
            let a = ip(e)?;
            Ok(vec![(a, if a.is_ipv6() { 128 } else { 32 })])
        }
        Expression::Named(NamedExpression::Prefix(p)) => {
            let a = ip(&p.addr)?;
            let full = if a.is_ipv6() { 128 } else { 32 };
            match u8::try_from(p.len) {
                Ok(len) if len <= full => Ok(vec![(a, len)]),
                _ => Err(format!("matches the prefix {a}/{}", p.len)),
            }
        }
        Expression::Range(r) => range_prefixes(ip(&r.range[0])?, ip(&r.range[1])?),
        _ => Err("matches the destination with an expression".into()),
    }
}

fn ports(values: &[Expression<'_>]) -> Result<Vec<(u16, u16)>, String> {
    let port = |e: &Expression<'_>| -> Result<u16, String> {
        match e {
            Expression::Number(n) => u16::try_from(*n).map_err(|_| format!("matches port {n}")),
            Expression::String(s) => parse_number(s)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("matches port {s}")),
            _ => Err("matches the port with an expression".into()),
        }
    };
    values
        .iter()
        .map(|v| match v {
            Expression::Range(r) => {
                let (a, b) = (port(&r.range[0])?, port(&r.range[1])?);
                if a <= b {
                    Ok((a, b))
                } else {
                    Err(format!("matches the empty port range {a}-{b}"))
                }
            }
            other => port(other).map(|p| (p, p)),
        })
        .collect()
}

fn protocols(values: &[Expression<'_>]) -> Result<Vec<Protocol>, String> {
    let mut out = Vec::new();
    for v in values {
        match v {
            Expression::String(s) if s == "tcp" => out.push(Protocol::Tcp),
            Expression::String(s) if s == "udp" => out.push(Protocol::Udp),
            Expression::Number(6) => out.push(Protocol::Tcp),
            Expression::Number(17) => out.push(Protocol::Udp),
            Expression::String(_) | Expression::Number(_) => {}
            _ => return Err("matches the protocol with an expression".into()),
        }
    }
    if out.is_empty() {
        return Err("matches only protocols the datapath does not forward".into());
    }
    Ok(out)
}
