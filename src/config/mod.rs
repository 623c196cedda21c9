//! A keepalived.conf reader: the configuration operators already have, read as keepalived
//! 2.2.7 reads it.
//!
//! [`load`] reads a file and what it includes; [`parse_str`] reads text. Either returns the typed
//! [`Config`] with keepalived's defaults filled in, plus [`Warning`]s: every keyword lb does not
//! know or does not implement, and every invalid value, is a warning with its file and line,
//! never silently dropped, and the rest of the file still loads (as keepalived does). Only a
//! syntax error (an unmatched brace, an unterminated quote) or an unreadable main file is an
//! error, and it names file:line:column.
//!
//! ```
//! let text = r#"
//! vrrp_instance VI_1 {
//!     state MASTER
//!     interface eth0
//!     virtual_router_id 51
//!     priority 150
//!     advert_int 1
//!     virtual_ipaddress { 192.168.1.100/24 }
//! }
//! virtual_server 192.168.1.100 80 {
//!     lb_algo wrr
//!     lb_kind DR
//!     real_server 10.0.0.11 80 {
//!         weight 3
//!         TCP_CHECK { connect_timeout 2 }
//!     }
//! }
//! "#;
//! let loaded = lb::config::parse_str(text, "keepalived.conf")?;
//! let vs = &loaded.config.virtual_servers[0];
//! assert_eq!(vs.scheduler, "wrr");
//! assert_eq!(vs.reals[0].checks[0].common.retry, 1); // keepalived's default
//! assert!(loaded.warnings.is_empty());
//! # Ok::<(), lb::config::ConfigError>(())
//! ```

mod model;
mod read_lvs;
mod read_vrrp;
mod source;
mod tree;
mod values;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::*;
pub use read_lvs::SCHEDULERS;

/// Where something is in the configuration: file, line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file (the main file or an included one).
    pub file: Arc<Path>,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Why a statement was not (fully) applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// A keyword keepalived does not have here.
    Unknown,
    /// A keepalived keyword lb does not implement.
    Unsupported,
    /// A value out of range or malformed, or a block missing what it needs.
    Invalid,
    /// A deprecated alias, read with its current meaning (`nb_get_retry`).
    Deprecated,
}

/// Something the reader did not apply, or applied differently than written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub at: Location,
    /// What sort.
    pub kind: WarningKind,
    /// What and why, in words.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(at: Location, message: impl Into<String>) -> Self {
        Warning {
            at,
            kind: WarningKind::Invalid,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.at, self.message)
    }
}

/// A configuration that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The main file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// Unbalanced braces, an unterminated quote, an include loop.
    #[error("{at}: syntax error: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What.
        message: String,
    },
}

/// A configuration and the warnings reading it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// What the file means.
    pub config: Config,
    /// What was not applied, in file order.
    pub warnings: Vec<Warning>,
}

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// keepalived's `-i NAME`: lines starting `@NAME` apply, `@^NAME` lines do not (without it,
    /// only `@^...` lines apply).
    pub instance: Option<String>,
}

/// Reads `path` and the files it includes.
pub fn load(path: impl AsRef<Path>, options: &Options) -> Result<Loaded, ConfigError> {
    let mut reader = source::Reader::new(&source::FileSystem, options.instance.as_deref());
    reader.read_main(path.as_ref())?;
    finish(reader)
}

/// Reads configuration text; `name` is the file name used in locations. `include` statements are
/// resolved against the file system relative to `name`'s directory.
pub fn parse_str(text: &str, name: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
    let mut reader = source::Reader::new(&source::FileSystem, None);
    reader.read_text(Arc::from(name.as_ref()), text, 0)?;
    finish(reader)
}

/// Like [`parse_str`] but never touches the file system: every `include` is a warning. For
/// untrusted input (the fuzz target).
pub fn parse_str_isolated(text: &str, name: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
    let mut reader = source::Reader::new(&source::NoFiles, None);
    reader.read_text(Arc::from(name.as_ref()), text, 0)?;
    finish(reader)
}

fn finish(reader: source::Reader<'_>) -> Result<Loaded, ConfigError> {
    let mut ctx = values::Ctx {
        warnings: reader.warnings,
    };
    let nodes = tree::build(reader.lines)?;
    let mut config = Config::default();
    // global_defs first: instance defaults come from it wherever it stands in the file.
    for node in nodes.iter().filter(|n| n.keyword() == "global_defs") {
        read_vrrp::global_defs(&mut ctx, node, &mut config.global);
    }
    for node in &nodes {
        match node.keyword() {
            "global_defs" => {}
            "vrrp_script" => config
                .vrrp_scripts
                .extend(read_vrrp::vrrp_script(&mut ctx, node)),
            "vrrp_instance" => config.vrrp_instances.extend(read_vrrp::vrrp_instance(
                &mut ctx,
                node,
                &config.global,
            )),
            "vrrp_sync_group" => config
                .sync_groups
                .extend(read_vrrp::sync_group(&mut ctx, node)),
            "virtual_server_group" => {
                config
                    .virtual_server_groups
                    .extend(read_lvs::virtual_server_group(&mut ctx, node));
            }
            "virtual_server" => config
                .virtual_servers
                .extend(read_lvs::virtual_server(&mut ctx, node)),
            "static_ipaddress"
            | "static_routes"
            | "static_rules"
            | "vrrp_track_process"
            | "vrrp_track_file"
            | "track_file"
            | "garp_group"
            | "linkbeat_interfaces"
            | "bfd_instance"
            | "SSL"
            | "net_namespace"
            | "net_namespace_ipvs"
            | "use_pid_dir"
            | "instance"
            | "child_wait_time" => ctx.unsupported(node),
            _ => ctx.unknown(node, "the top level"),
        }
    }
    cross_check(&mut ctx, &config);
    Ok(Loaded {
        config,
        warnings: ctx.warnings,
    })
}

/// References between blocks: tracked scripts, sync group members, virtual server groups,
/// and VRIDs used twice on one interface.
fn cross_check(ctx: &mut values::Ctx, config: &Config) {
    let scripts: HashSet<&str> = config
        .vrrp_scripts
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let instances: HashSet<&str> = config
        .vrrp_instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let mut vrids = HashSet::new();
    for inst in &config.vrrp_instances {
        for t in inst
            .track_scripts
            .iter()
            .filter(|t| !scripts.contains(t.name.as_str()))
        {
            ctx.warnings.push(Warning::new(
                inst.at.clone(),
                format!(
                    "vrrp_instance {} tracks unknown vrrp_script '{}'",
                    inst.name, t.name
                ),
            ));
        }
        if !vrids.insert((inst.interface.as_str(), inst.vrid, inst.ipv6)) {
            ctx.warnings.push(Warning::new(
                inst.at.clone(),
                format!(
                    "vrrp_instance {}: virtual_router_id {} is used twice on {}",
                    inst.name, inst.vrid, inst.interface
                ),
            ));
        }
    }
    for group in &config.sync_groups {
        for t in group
            .track_scripts
            .iter()
            .filter(|t| !scripts.contains(t.name.as_str()))
        {
            ctx.warnings.push(Warning::new(
                group.at.clone(),
                format!(
                    "vrrp_sync_group {} tracks unknown vrrp_script '{}'",
                    group.name, t.name
                ),
            ));
        }
        for member in group
            .instances
            .iter()
            .filter(|m| !instances.contains(m.as_str()))
        {
            ctx.warnings.push(Warning::new(
                group.at.clone(),
                format!(
                    "vrrp_sync_group {}: no vrrp_instance named '{member}'",
                    group.name
                ),
            ));
        }
    }
    let groups: HashSet<&str> = config
        .virtual_server_groups
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    for vs in &config.virtual_servers {
        if let ServiceAddress::Group(name) = &vs.addr {
            if !groups.contains(name.as_str()) {
                ctx.warnings.push(Warning::new(
                    vs.at.clone(),
                    format!("no virtual_server_group named '{name}'"),
                ));
            }
        }
    }
}
