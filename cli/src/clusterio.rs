//! The Clusterio reference master, slave, control client and token tool, built only on the
//! generated `clusterio` bindings and the runtime (2020-03 wire format).
//!
//! ```text
//! protolink clusterio token --secret S --control            # a control token
//! protolink clusterio token --secret S --slave 1            # slave 1's token
//! protolink serve clusterio --listen 127.0.0.1:0 --secret S # ws://IP:PORT/api/socket
//! protolink clusterio slave --url ws://IP:PORT/api/socket --token T --id 1 --name one
//! protolink clusterio ctl --url ws://IP:PORT/api/socket --token T create-instance --name a --id 7
//! ```
//!
//! Decisions where the seeds and WIRE-NOTES are silent:
//!
//! - Tokens are HS256 JWTs signed with the master's secret, without expiry, as the 2020-03
//!   master issued them: a control's claims are `{"aud": "control"}`, slave N's are
//!   `{"aud": "slave", "slave": N}`. The master checks the signature, the audience of the link
//!   kind, and for a slave that `slave` equals the `id` it registers with; anything else closes
//!   the link with "Authentication failed".
//! - One endpoint, `/api/socket`, serves controls and slaves; the first client frame
//!   (`register_control` or `register_slave`) decides which kind of link it is.
//! - An instance's `serialized_config` is a flat JSON object that must hold an integer `id` and
//!   a string `name`: `create_instance` takes both from it ("Instance with ID N already
//!   exists" for a taken id). `set_instance_config_field` stores `value` as a string under
//!   `field` (`id` cannot be changed; `name` renames); when the instance's slave is connected
//!   the new configuration is pushed to it with `assign_instance`.
//! - The master's registry is in memory. `update_instances` adds the instances a slave reports
//!   that the master does not know (after a master restart) and marks every reported instance
//!   as assigned to that slave; for known instances the master's configuration wins.
//! - `assign_instance_command` needs the target slave connected ("Slave with ID N is not
//!   connected"); an instance moving away from another connected slave is first deleted there.
//! - `delete_instance` of an assigned instance is forwarded to its slave (the catalogue's
//!   forwarding errors apply), which stops it first if it runs; an unassigned one is only
//!   dropped from the registry.
//! - The slave hosts each assigned instance in-process over a virtual pair. It tracks whether an
//!   instance runs: `start_instance` on a running one fails with "Instance ID N is already
//!   running"; `stop_instance`, `create_save` and `send_rcon` on a stopped one fail with
//!   "Instance ID N is not running"; an instance the slave does not host is "Instance with ID N
//!   does not exist".
//! - The simulated instance answers `send_rcon` with the command itself (echo) and emits one
//!   `instance_output` line per command (`{source: "rcon", format: "none", type: "generic",
//!   message: COMMAND}`), as well as lines for start, stop and save.
//! - Invalid frames close with `Invalid message: ` and the real master's texts where they are
//!   known: `Validation failed for TYPE` for a payload that does not match, `Unhandled message
//!   TYPE` for an unknown type or one not valid in that direction.
//! - A slave closed with "Registered from another connection" stops (exit code 1) instead of
//!   reconnecting and taking the registration back.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use protolink::link::close;
use protolink::transport::virtual_pair;
use protolink::ws::{Backoff, Routes, WsServer, connect};
use protolink::{Empty, Link, LinkConfig, RemoteError, RequestError, Session};
use protolink_protocols::clusterio::{
    self as cl, ControlWithMaster, ControlWithMasterHandler, ControlWithMasterSender,
    InstanceWithSlave, InstanceWithSlaveHandler, InstanceWithSlaveSender, MasterWithControl,
    MasterWithControlHandler, MasterWithControlSender, MasterWithSlave, MasterWithSlaveHandler,
    MasterWithSlaveSender, SlaveWithInstance, SlaveWithInstanceHandler, SlaveWithInstanceSender,
    SlaveWithMaster, SlaveWithMasterHandler, SlaveWithMasterSender,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::output::{Printer, serve_until_signal, shutdown_signal};

/// The version every endpoint announces.
const VERSION: &str = "2.0.0-alpha";
/// The close reason of a slave link replaced by a newer registration.
const REPLACED: &str = "Registered from another connection";
/// The close reason of a failed registration.
const AUTH_FAILED: &str = "Authentication failed";

type Config = BTreeMap<String, Value>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Signs a token as the 2020-03 master does (`{"id": "api"}`, HS256, no expiry): one token
/// serves slaves and controls. `slave` adds the slave's id to the claims, for the operator's
/// eyes only: the master checks signatures, not claims.
pub(crate) fn token(
    secret: &str,
    slave: Option<i64>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut claims = json!({"id": "api"});
    if let Some(slave) = slave {
        claims["slave"] = json!(slave);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// Whether a token is an HS256 JWT signed with the master's secret, whatever its claims, that
/// has not expired (`exp`) and is already valid (`nbf`), where it says so; a token without
/// `exp` stays valid, as the real master's are.
fn verify(secret: &str, token: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = 0;
    jsonwebtoken::decode::<serde_json::Map<String, Value>>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| debug!(error = %e, "token refused"))
    .is_ok()
}

// ---------------------------------------------------------------------------------------------
// Instance configurations

/// A field's type, as the 2020-03 config classes check it.
#[derive(Clone, Copy, PartialEq)]
enum FieldType {
    String,
    Number,
    Boolean,
    Object,
}

/// One field of a known group: name, type, whether it may be `null`, initial value.
type FieldDef = (&'static str, FieldType, bool, fn() -> Value);

/// The groups of an instance configuration the 2020-03 master knows (its built-in groups and
/// those of the plugins it ships), in its order. The master fills in what a serialised
/// configuration leaves out, as the real one does when it loads one.
const INSTANCE_GROUPS: &[(&str, &[FieldDef])] = &[
    (
        "instance",
        &[
            ("name", FieldType::String, false, || json!("New Instance")),
            ("id", FieldType::Number, false, || Value::Null),
            ("assigned_slave", FieldType::Number, true, || Value::Null),
        ],
    ),
    (
        "factorio",
        &[
            ("game_port", FieldType::Number, true, || Value::Null),
            ("rcon_port", FieldType::Number, true, || Value::Null),
            ("rcon_password", FieldType::String, true, || Value::Null),
            (
                "settings",
                FieldType::Object,
                false,
                || json!({"tags": ["clusterio"], "auto_pause": false}),
            ),
        ],
    ),
    (
        "global_chat",
        &[("enabled", FieldType::Boolean, false, || json!(true))],
    ),
    (
        "research_sync",
        &[("enabled", FieldType::Boolean, false, || json!(true))],
    ),
    (
        "statistics_exporter",
        &[("enabled", FieldType::Boolean, false, || json!(true))],
    ),
    (
        "subspace_storage",
        &[
            ("enabled", FieldType::Boolean, false, || json!(true)),
            ("log_item_transfers", FieldType::Boolean, false, || {
                json!(false)
            }),
        ],
    ),
];

/// JavaScript's name for a value's type, as the config classes word their errors.
fn basic_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An instance configuration, serialised as the 2020-03 format has it:
/// `{"groups": [{"name": "instance", "fields": {"id": 7, "name": "a", "assigned_slave": null}},
/// ...]}`.
#[derive(Clone, Debug, PartialEq)]
struct InstanceConfig {
    /// The groups, by name, in the order they are serialised.
    groups: Vec<(String, serde_json::Map<String, Value>)>,
}

impl InstanceConfig {
    /// Reads a serialised configuration: the known groups are completed with their initial
    /// values, unknown groups and fields kept as they are.
    fn load(serialized: &Config) -> Result<Self, RemoteError> {
        let groups = match serialized.get("groups") {
            Some(Value::Array(groups)) => groups,
            other => {
                return Err(RemoteError::new(format!(
                    "Expected groups to be an array, not {}",
                    other.map_or("undefined", basic_type)
                )));
            }
        };
        let mut read: Vec<(String, serde_json::Map<String, Value>)> = Vec::new();
        for group in groups {
            let (Some(name), Some(fields)) = (
                group.get("name").and_then(Value::as_str),
                group.get("fields").and_then(Value::as_object),
            ) else {
                return Err(RemoteError::new(format!(
                    "Expected object with name and fields, not {} for ConfigGroup",
                    basic_type(group)
                )));
            };
            read.push((name.to_owned(), fields.clone()));
        }
        let mut out = Vec::new();
        for (name, fields) in INSTANCE_GROUPS {
            let given = read
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| read.remove(i).1);
            let mut group = serde_json::Map::new();
            for (field, _, _, initial) in *fields {
                group.insert((*field).to_owned(), initial());
            }
            group.extend(given.unwrap_or_default());
            out.push(((*name).to_owned(), group));
        }
        out.extend(read);
        let config = InstanceConfig { groups: out };
        if config.id().is_none() {
            return Err(RemoteError::new(
                "Expected type of instance.id to be number",
            ));
        }
        Ok(config)
    }

    /// The serialised form.
    fn serialize(&self) -> Config {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(name, fields)| json!({"name": name, "fields": fields}))
            .collect();
        [("groups".to_owned(), Value::Array(groups))]
            .into_iter()
            .collect()
    }

    fn get(&self, group: &str, field: &str) -> Option<&Value> {
        self.groups
            .iter()
            .find(|(name, _)| name == group)
            .and_then(|(_, fields)| fields.get(field))
    }

    fn id(&self) -> Option<i64> {
        self.get("instance", "id").and_then(Value::as_i64)
    }

    fn name(&self) -> String {
        match self.get("instance", "name") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    fn assigned_slave(&self) -> Option<i64> {
        self.get("instance", "assigned_slave")
            .and_then(Value::as_i64)
    }

    fn set_assigned_slave(&mut self, slave: Option<i64>) {
        if let Some((_, fields)) = self.groups.iter_mut().find(|(n, _)| n == "instance") {
            fields.insert("assigned_slave".to_owned(), json!(slave));
        }
    }

    /// Sets `GROUP.FIELD` from text, converted to the field's type as the real config classes
    /// do (`""` is `null`, numbers and booleans are parsed, objects are JSON), with their
    /// error texts.
    fn set(&mut self, name: &str, text: &str) -> Result<(), RemoteError> {
        let (group, field) = name.split_once('.').unwrap_or((name, ""));
        let Some((_, fields)) = self.groups.iter_mut().find(|(n, _)| n == group) else {
            return Err(RemoteError::new(format!("No config group named '{group}'")));
        };
        let Some(&(_, ty, optional, _)) = INSTANCE_GROUPS
            .iter()
            .find(|(n, _)| *n == group)
            .and_then(|(_, defs)| defs.iter().find(|(f, ..)| *f == field))
        else {
            return Err(RemoteError::new(format!("No field named '{field}'")));
        };
        let value = match (text, ty) {
            ("", _) => Value::Null,
            (t, FieldType::Number) => match t.trim().parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => t
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map_or_else(|| json!(t), |n| json!(n)),
            },
            ("true", FieldType::Boolean) => json!(true),
            ("false", FieldType::Boolean) => json!(false),
            (t, FieldType::Object) => serde_json::from_str(t)
                .map_err(|e| RemoteError::new(format!("Error parsing value for {field}: {e}")))?,
            (t, _) => json!(t),
        };
        let expected = match ty {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
        };
        if value.is_null() && !optional {
            return Err(RemoteError::new(format!("Field {field} cannot be null")));
        }
        if !value.is_null() && basic_type(&value) != expected {
            return Err(RemoteError::new(format!(
                "Expected type of {field} to be {expected}, not {}",
                basic_type(&value)
            )));
        }
        fields.insert(field.to_owned(), value);
        Ok(())
    }
}

/// A configuration for `ctl create-instance`, as clusterctl makes one: the built-in groups
/// only (the master adds the plugins').
fn new_instance_config(id: i64, name: &str) -> Config {
    let mut groups: Vec<Value> = Vec::new();
    for (group, fields) in INSTANCE_GROUPS.iter().take(2) {
        let mut values = serde_json::Map::new();
        for (field, _, _, initial) in *fields {
            values.insert((*field).to_owned(), initial());
        }
        if *group == "instance" {
            values.insert("id".to_owned(), json!(id));
            values.insert("name".to_owned(), json!(name));
        }
        groups.push(json!({"name": group, "fields": values}));
    }
    [("groups".to_owned(), Value::Array(groups))]
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The master

/// A slave the master has seen.
struct SlaveRecord {
    agent: String,
    version: String,
    name: String,
    /// The connection it is registered on, while connected.
    connection: Option<(u64, Link<MasterWithSlave>)>,
}

/// A control client's link and the instances whose output it receives.
struct ControlRecord {
    link: Link<MasterWithControl>,
    subscriptions: BTreeSet<i64>,
}

/// Everything the master knows, shared by every connection.
struct Master {
    secret: String,
    slaves: Mutex<BTreeMap<i64, SlaveRecord>>,
    instances: Mutex<BTreeMap<i64, InstanceConfig>>,
    controls: Mutex<BTreeMap<u64, ControlRecord>>,
    /// The slave registered on each slave link, by link id.
    slave_links: Mutex<BTreeMap<u64, i64>>,
    out: Printer,
}

fn not_found(instance_id: i64) -> RemoteError {
    RemoteError::new(format!("Instance with ID {instance_id} does not exist"))
}

impl Master {
    fn instance_config(&self, instance_id: i64) -> Result<InstanceConfig, RemoteError> {
        lock(&self.instances)
            .get(&instance_id)
            .cloned()
            .ok_or_else(|| not_found(instance_id))
    }

    /// Sends a slave an instance's configuration, as the master's copy has it.
    async fn assign(
        link: &Link<MasterWithSlave>,
        config: &InstanceConfig,
    ) -> Result<Empty, RemoteError> {
        Ok(link
            .assign_instance(cl::AssignInstance {
                instance_id: config.id().unwrap_or_default(),
                serialized_config: config.serialize(),
            })
            .await?)
    }

    fn slave_link(&self, slave_id: i64) -> Option<Link<MasterWithSlave>> {
        lock(&self.slaves)
            .get(&slave_id)
            .and_then(|s| s.connection.as_ref())
            .map(|(_, link)| link.clone())
            .filter(|link| !link.is_closed())
    }

    /// The link to the slave owning an instance, with the catalogue's forwarding errors.
    fn owner(&self, instance_id: i64) -> Result<Link<MasterWithSlave>, RemoteError> {
        let slave_id = self
            .instance_config(instance_id)?
            .assigned_slave()
            .ok_or_else(|| RemoteError::new("Instance is not assigned to a slave"))?;
        self.slave_link(slave_id)
            .ok_or_else(|| RemoteError::new("Slave containing instance is not connected"))
    }

    /// Records a registered slave on its connection; a previous connection of the same id is
    /// closed.
    async fn slave_registered(
        &self,
        registration: &cl::RegisterSlave,
        link: Link<MasterWithSlave>,
    ) {
        let connection = link.id();
        lock(&self.slave_links).insert(connection, registration.id);
        let replaced = {
            let mut slaves = lock(&self.slaves);
            let previous = slaves.insert(
                registration.id,
                SlaveRecord {
                    agent: registration.agent.clone(),
                    version: registration.version.clone(),
                    name: registration.name.clone(),
                    connection: Some((connection, link)),
                },
            );
            previous.and_then(|p| p.connection).map(|(_, link)| link)
        };
        self.out.line(json!({"slave_registered": {
            "id": registration.id,
            "name": registration.name,
            "replaced": replaced.is_some(),
        }}));
        if let Some(old) = replaced {
            old.close(close::NORMAL, REPLACED).await;
        }
    }

    /// The slave registered on a link, if it got that far.
    fn slave_on(&self, connection: u64) -> Option<i64> {
        lock(&self.slave_links).get(&connection).copied()
    }

    fn slave_disconnected(&self, connection: u64) {
        let Some(slave_id) = lock(&self.slave_links).remove(&connection) else {
            return;
        };
        let mut slaves = lock(&self.slaves);
        if let Some(record) = slaves.get_mut(&slave_id) {
            if record
                .connection
                .as_ref()
                .is_some_and(|(c, _)| *c == connection)
            {
                record.connection = None;
                self.out.line(json!({"slave_disconnected": slave_id}));
            }
        }
    }

    /// Sends an instance's output to every control subscribed to it.
    async fn publish_output(&self, output: cl::InstanceOutput) {
        let links: Vec<_> = lock(&self.controls)
            .values()
            .filter(|c| c.subscriptions.contains(&output.instance_id))
            .map(|c| c.link.clone())
            .collect();
        for link in links {
            if let Err(e) = link.instance_output(output.clone()).await {
                debug!(error = %e, "cannot pass output on to a control");
            }
        }
    }
}

/// The handler of one control link.
struct ControlConnection {
    master: Arc<Master>,
    id: u64,
}

impl MasterWithControlHandler for ControlConnection {
    async fn list_slaves(&self, _: cl::ListSlaves) -> Result<cl::ListSlavesReply, RemoteError> {
        let list = lock(&self.master.slaves)
            .iter()
            .map(|(&id, s)| cl::SlaveInfo {
                agent: s.agent.clone(),
                version: s.version.clone(),
                name: s.name.clone(),
                id,
                connected: s.connection.as_ref().is_some_and(|(_, l)| !l.is_closed()),
            })
            .collect();
        Ok(cl::ListSlavesReply { list })
    }

    async fn list_instances(
        &self,
        _: cl::ListInstances,
    ) -> Result<cl::ListInstancesReply, RemoteError> {
        let list = lock(&self.master.instances)
            .iter()
            .map(|(&id, i)| cl::InstanceInfo {
                name: i.name(),
                id,
                assigned_slave: i.assigned_slave(),
            })
            .collect();
        Ok(cl::ListInstancesReply { list })
    }

    async fn set_instance_output_subscriptions(
        &self,
        request: cl::SetInstanceOutputSubscriptions,
    ) -> Result<Empty, RemoteError> {
        if let Some(control) = lock(&self.master.controls).get_mut(&self.id) {
            control.subscriptions = request.instance_ids.into_iter().collect();
        }
        Ok(Empty)
    }

    async fn create_instance(&self, request: cl::CreateInstance) -> Result<Empty, RemoteError> {
        let config = InstanceConfig::load(&request.serialized_config)?;
        let id = config.id().unwrap_or_default();
        let mut instances = lock(&self.master.instances);
        if instances.contains_key(&id) {
            return Err(RemoteError::new(format!(
                "Instance with ID {id} already exists"
            )));
        }
        instances.insert(id, config);
        Ok(Empty)
    }

    async fn get_instance_config(
        &self,
        request: cl::GetInstanceConfig,
    ) -> Result<cl::GetInstanceConfigReply, RemoteError> {
        let serialized_config = self
            .master
            .instance_config(request.instance_id)?
            .serialize();
        Ok(cl::GetInstanceConfigReply { serialized_config })
    }

    async fn set_instance_config_field(
        &self,
        request: cl::SetInstanceConfigField,
    ) -> Result<Empty, RemoteError> {
        let config = {
            let mut instances = lock(&self.master.instances);
            let instance = instances
                .get_mut(&request.instance_id)
                .ok_or_else(|| not_found(request.instance_id))?;
            match request.field.as_str() {
                "instance.assigned_slave" => {
                    return Err(RemoteError::new(
                        "instance.assigned_slave must be set through the assign-slave interface",
                    ));
                }
                "instance.id" => {
                    return Err(RemoteError::new("Setting instance.id is not supported"));
                }
                field => instance.set(field, &request.value)?,
            }
            instance.clone()
        };
        // The slave keeps a copy: bring it up to date while it is connected.
        if let Some(link) = config
            .assigned_slave()
            .and_then(|s| self.master.slave_link(s))
        {
            Master::assign(&link, &config).await?;
        }
        Ok(Empty)
    }

    async fn assign_instance_command(
        &self,
        request: cl::AssignInstanceCommand,
    ) -> Result<Empty, RemoteError> {
        let mut config = self.master.instance_config(request.instance_id)?;
        let target = self.master.slave_link(request.slave_id).ok_or_else(|| {
            RemoteError::new("Target slave is not connected to the master server")
        })?;
        if let Some(previous) = config.assigned_slave().filter(|&s| s != request.slave_id) {
            if let Some(link) = self.master.slave_link(previous) {
                link.delete_instance(cl::DeleteInstance {
                    instance_id: request.instance_id,
                })
                .await?;
            }
        }
        config.set_assigned_slave(Some(request.slave_id));
        if let Some(instance) = lock(&self.master.instances).get_mut(&request.instance_id) {
            instance.set_assigned_slave(Some(request.slave_id));
        }
        Master::assign(&target, &config).await
    }

    async fn start_instance(&self, request: cl::StartInstance) -> Result<Empty, RemoteError> {
        Ok(self
            .master
            .owner(request.instance_id)?
            .start_instance(request)
            .await?)
    }

    async fn create_save(&self, request: cl::CreateSave) -> Result<Empty, RemoteError> {
        Ok(self
            .master
            .owner(request.instance_id)?
            .create_save(request)
            .await?)
    }

    async fn stop_instance(&self, request: cl::StopInstance) -> Result<Empty, RemoteError> {
        Ok(self
            .master
            .owner(request.instance_id)?
            .stop_instance(request)
            .await?)
    }

    async fn delete_instance(&self, request: cl::DeleteInstance) -> Result<Empty, RemoteError> {
        let id = request.instance_id;
        if self.master.instance_config(id)?.assigned_slave().is_some() {
            self.master.owner(id)?.delete_instance(request).await?;
        }
        lock(&self.master.instances).remove(&id);
        Ok(Empty)
    }

    async fn send_rcon(&self, request: cl::SendRcon) -> Result<cl::SendRconReply, RemoteError> {
        Ok(self
            .master
            .owner(request.instance_id)?
            .send_rcon(request)
            .await?)
    }
}

/// The handler of one slave link.
struct SlaveConnection {
    master: Arc<Master>,
    /// The link's id, under which the master keeps the slave registered on it.
    link: u64,
}

impl MasterWithSlaveHandler for SlaveConnection {
    /// As the real master: every instance it has on this slave is assigned again, one after
    /// the other, then each reported instance it does not know is adopted (assigned to this
    /// slave) and assigned. A slave must not answer `assign_instance` with this event.
    async fn update_instances(&self, message: cl::UpdateInstances) {
        let Some(slave_id) = self.master.slave_on(self.link) else {
            return;
        };
        let Some(link) = self.master.slave_link(slave_id) else {
            return;
        };
        let owned: Vec<InstanceConfig> = lock(&self.master.instances)
            .values()
            .filter(|c| c.assigned_slave() == Some(slave_id))
            .cloned()
            .collect();
        for config in owned {
            if let Err(e) = Master::assign(&link, &config).await {
                debug!(error = %e.message, "cannot assign an instance again");
            }
        }
        for reported in message.instances {
            let mut config = match InstanceConfig::load(&reported.serialized_config) {
                Ok(config) => config,
                Err(e) => {
                    warn!(slave_id, error = %e.message, "a reported instance is unreadable");
                    continue;
                }
            };
            let id = config.id().unwrap_or_default();
            {
                let mut instances = lock(&self.master.instances);
                if instances.contains_key(&id) {
                    continue;
                }
                config.set_assigned_slave(Some(slave_id));
                instances.insert(id, config.clone());
            }
            if let Err(e) = Master::assign(&link, &config).await {
                debug!(error = %e.message, "cannot assign an adopted instance");
            }
        }
    }

    async fn instance_output(&self, message: cl::InstanceOutput) {
        self.master.publish_output(message).await;
    }
}

/// `protolink serve clusterio`: the master at `/api/socket`. Controls and slaves share the path;
/// the runtime greets each connection with `hello` and makes it the link its registration
/// chose.
pub(crate) async fn serve(listen: &str, secret: String) -> io::Result<()> {
    // At the definition's `path` (`/api/socket`).
    let server = WsServer::<MasterWithControl>::bind(listen).await?;
    // The signal handlers are in place before anyone reads "listening".
    let stop = shutdown_signal();
    let out = Printer::stdout();
    out.line_text(&format!(
        "listening on {}",
        crate::output::ws_url::<cl::Clusterio>(server.local_addr()?)
    ));
    let master = Arc::new(Master {
        secret,
        slaves: Mutex::new(BTreeMap::new()),
        instances: Mutex::new(BTreeMap::new()),
        controls: Mutex::new(BTreeMap::new()),
        slave_links: Mutex::new(BTreeMap::new()),
        out,
    });
    let hello = cl::Hello {
        version: VERSION.to_owned(),
    };
    let control_session = Session::new().with(hello.clone()).authenticate({
        let master = master.clone();
        move |registration: cl::RegisterControl| {
            let valid = verify(&master.secret, &registration.token);
            async move {
                if valid {
                    Ok(())
                } else {
                    Err(AUTH_FAILED.to_owned())
                }
            }
        }
    });
    let slave_session = Session::new().with(hello).authenticate_link({
        let master = master.clone();
        move |link: Link<MasterWithSlave>, registration: cl::RegisterSlave| {
            let master = master.clone();
            async move {
                if !verify(&master.secret, &registration.token) {
                    return Err(AUTH_FAILED.to_owned());
                }
                // Registered before `ready` goes out: the slave is listed once it is in.
                master.slave_registered(&registration, link).await;
                Ok(())
            }
        }
    });
    let on_control = {
        let master = master.clone();
        move |link: Link<MasterWithControl>| {
            let id = link.id();
            lock(&master.controls).insert(
                id,
                ControlRecord {
                    link: link.clone(),
                    subscriptions: BTreeSet::new(),
                },
            );
            let gone = master.clone();
            tokio::spawn(async move {
                link.closed().await;
                lock(&gone.controls).remove(&id);
            });
            ControlConnection {
                master: master.clone(),
                id,
            }
        }
    };
    let on_slave = {
        let master = master.clone();
        move |link: Link<MasterWithSlave>| {
            let id = link.id();
            let gone = master.clone();
            tokio::spawn(async move {
                link.closed().await;
                gone.slave_disconnected(id);
            });
            SlaveConnection {
                master: master.clone(),
                link: id,
            }
        }
    };
    let routes = Routes::new()
        .route(control_session, on_control)
        .route(slave_session, on_slave);
    let (shutdown, task) = server.serve_routes(routes);
    serve_until_signal(stop, shutdown, task).await
}

// ---------------------------------------------------------------------------------------------
// The slave

/// An instance the slave hosts.
struct Hosted {
    config: Config,
    link: Link<SlaveWithInstance>,
    running: bool,
}

/// The slave's state, shared by its master links and its instances.
struct Slave {
    instances: Mutex<BTreeMap<i64, Hosted>>,
    /// The current link to the master.
    master: Mutex<Option<Link<SlaveWithMaster>>>,
    out: Printer,
}

impl Slave {
    fn received<M: Serialize>(&self, name: &str, message: &M) {
        self.out.line(json!({
            "received": name,
            "data": serde_json::to_value(message).unwrap_or_default(),
        }));
    }

    fn report(&self) -> cl::UpdateInstances {
        cl::UpdateInstances {
            instances: lock(&self.instances)
                .values()
                .map(|h| cl::SlaveInstance {
                    serialized_config: h.config.clone(),
                })
                .collect(),
        }
    }

    /// The link to an instance, if hosted and (when `running` is given) in that state.
    fn instance(
        &self,
        id: i64,
        running: Option<bool>,
    ) -> Result<Link<SlaveWithInstance>, RemoteError> {
        let instances = lock(&self.instances);
        let hosted = instances.get(&id).ok_or_else(|| not_found(id))?;
        match running {
            Some(true) if !hosted.running => {
                Err(RemoteError::new(format!("Instance ID {id} is not running")))
            }
            Some(false) if hosted.running => Err(RemoteError::new(format!(
                "Instance ID {id} is already running"
            ))),
            _ => Ok(hosted.link.clone()),
        }
    }

    fn set_running(&self, id: i64, running: bool) {
        if let Some(hosted) = lock(&self.instances).get_mut(&id) {
            hosted.running = running;
        }
    }

    /// Starts an in-process instance over a virtual pair.
    fn host(self: &Arc<Self>, id: i64, config: Config) {
        let ((slave_src, slave_snk), (inst_src, inst_snk)) = virtual_pair(64);
        let out = self.out.clone();
        Link::<InstanceWithSlave>::spawn(
            inst_src,
            inst_snk,
            LinkConfig::default(),
            Session::new(),
            move |link| Instance { id, link, out },
        );
        let slave = self.clone();
        let link = Link::<SlaveWithInstance>::spawn(
            slave_src,
            slave_snk,
            LinkConfig::default(),
            Session::new(),
            move |_| InstanceUplink { slave },
        );
        lock(&self.instances).insert(
            id,
            Hosted {
                config,
                link,
                running: false,
            },
        );
    }
}

/// The slave's handler of one master link.
struct MasterUplink {
    slave: Arc<Slave>,
}

impl SlaveWithMasterHandler for MasterUplink {
    async fn assign_instance(&self, request: cl::AssignInstance) -> Result<Empty, RemoteError> {
        self.slave.received("assign_instance", &request);
        let id = request.instance_id;
        let updated = match lock(&self.slave.instances).get_mut(&id) {
            Some(hosted) => {
                hosted.config = request.serialized_config.clone();
                true
            }
            None => false,
        };
        if !updated {
            self.slave.host(id, request.serialized_config);
        }
        // Not `update_instances`: the master answers that by assigning every instance again.
        Ok(Empty)
    }

    /// The statistics_exporter plugin's request: the running instances' metrics (the slave
    /// has no process metrics of its own to add).
    async fn get_metrics(
        &self,
        request: cl::GetMetrics,
    ) -> Result<cl::GetMetricsReply, RemoteError> {
        let running: Vec<_> = lock(&self.slave.instances)
            .values()
            .filter(|h| h.running)
            .map(|h| h.link.clone())
            .collect();
        let mut results = Vec::new();
        for link in running {
            match link.get_metrics(request.clone()).await {
                Ok(reply) => results.extend(reply.results),
                Err(e) => debug!(error = %e, "an instance did not give its metrics"),
            }
        }
        Ok(cl::GetMetricsReply { results })
    }

    async fn start_instance(&self, request: cl::StartInstance) -> Result<Empty, RemoteError> {
        self.slave.received("start_instance", &request);
        let id = request.instance_id;
        let reply = self
            .slave
            .instance(id, Some(false))?
            .start_instance(request)
            .await?;
        self.slave.set_running(id, true);
        Ok(reply)
    }

    async fn create_save(&self, request: cl::CreateSave) -> Result<Empty, RemoteError> {
        self.slave.received("create_save", &request);
        let link = self.slave.instance(request.instance_id, Some(true))?;
        Ok(link.create_save(request).await?)
    }

    async fn stop_instance(&self, request: cl::StopInstance) -> Result<Empty, RemoteError> {
        self.slave.received("stop_instance", &request);
        let id = request.instance_id;
        let reply = self
            .slave
            .instance(id, Some(true))?
            .stop_instance(request)
            .await?;
        self.slave.set_running(id, false);
        Ok(reply)
    }

    async fn delete_instance(&self, request: cl::DeleteInstance) -> Result<Empty, RemoteError> {
        self.slave.received("delete_instance", &request);
        let id = request.instance_id;
        let link = self.slave.instance(id, None)?;
        if self.slave.instance(id, Some(true)).is_ok() {
            link.stop_instance(cl::StopInstance { instance_id: id })
                .await?;
        }
        lock(&self.slave.instances).remove(&id);
        link.close(close::NORMAL, "instance deleted").await;
        Ok(Empty)
    }

    async fn send_rcon(&self, request: cl::SendRcon) -> Result<cl::SendRconReply, RemoteError> {
        self.slave.received("send_rcon", &request);
        let link = self.slave.instance(request.instance_id, Some(true))?;
        Ok(link.send_rcon(request).await?)
    }
}

/// The slave's handler of an instance link: output goes up to the master.
struct InstanceUplink {
    slave: Arc<Slave>,
}

impl SlaveWithInstanceHandler for InstanceUplink {
    async fn instance_output(&self, message: cl::InstanceOutput) {
        let master = lock(&self.slave.master).clone();
        if let Some(link) = master {
            if let Err(e) = link.instance_output(message).await {
                debug!(error = %e, "cannot pass output on to the master");
            }
        }
    }
}

/// A simulated instance: answers what its slave forwards and reports output lines.
struct Instance {
    id: i64,
    link: Link<InstanceWithSlave>,
    out: Printer,
}

impl Instance {
    async fn output(&self, kind: &str, source: &str, message: String) {
        self.out
            .line(json!({"instance": self.id, "output": message}));
        let line = cl::InstanceOutput {
            instance_id: self.id,
            output: cl::OutputLine {
                source: source.to_owned(),
                format: "none".to_owned(),
                r#type: kind.to_owned(),
                message,
                received: now_ms(),
                time: None,
                // Log lines name a level and a file, as Factorio's do (clusterctl prints
                // `LEVEL FILE: MESSAGE` for them).
                level: (kind == "log").then(|| "Info".to_owned()),
                file: (kind == "log").then(|| "protolink-instance".to_owned()),
                action: None,
            },
        };
        if let Err(e) = self.link.instance_output(line).await {
            debug!(error = %e, "cannot send output");
        }
    }
}

impl InstanceWithSlaveHandler for Instance {
    async fn start_instance(&self, _: cl::StartInstance) -> Result<Empty, RemoteError> {
        self.output("log", "server", "Starting instance".to_owned())
            .await;
        Ok(Empty)
    }

    async fn create_save(&self, _: cl::CreateSave) -> Result<Empty, RemoteError> {
        self.output("log", "server", "Saving game".to_owned()).await;
        Ok(Empty)
    }

    async fn stop_instance(&self, _: cl::StopInstance) -> Result<Empty, RemoteError> {
        self.output("log", "server", "Stopping instance".to_owned())
            .await;
        Ok(Empty)
    }

    async fn get_metrics(&self, _: cl::GetMetrics) -> Result<cl::GetMetricsReply, RemoteError> {
        Ok(cl::GetMetricsReply {
            results: Vec::new(),
        })
    }

    async fn send_rcon(&self, request: cl::SendRcon) -> Result<cl::SendRconReply, RemoteError> {
        self.output("generic", "rcon", request.command.clone())
            .await;
        Ok(cl::SendRconReply {
            result: request.command,
        })
    }
}

/// `protolink clusterio slave`: stays connected (reconnecting) and hosts instances.
pub(crate) async fn slave(url: String, token: String, id: i64, name: String) -> io::Result<()> {
    let out = Printer::stdout();
    let slave = Arc::new(Slave {
        instances: Mutex::new(BTreeMap::new()),
        master: Mutex::new(None),
        out: out.clone(),
    });
    let session = Session::new().with(cl::RegisterSlave {
        token,
        agent: "protolink-slave".to_owned(),
        version: VERSION.to_owned(),
        name,
        id,
    });
    let (replaced_tx, mut replaced_rx) = watch::channel(false);
    let uplink = {
        let slave = slave.clone();
        move |_| MasterUplink {
            slave: slave.clone(),
        }
    };
    let client = connect::<SlaveWithMaster>(&url)
        .session(session)
        .handler(uplink)
        .reconnecting(Backoff::default(), move |link: Link<SlaveWithMaster>| {
            let (slave, replaced_tx) = (slave.clone(), replaced_tx.clone());
            async move {
                *lock(&slave.master) = Some(link.clone());
                slave.out.line(json!({"connected": {"id": id}}));
                if let Err(e) = link.update_instances(slave.report()).await {
                    debug!(error = %e, "cannot report instances");
                }
                tokio::spawn(async move {
                    let (code, reason) = link.closed().await;
                    slave
                        .out
                        .line(json!({"disconnected": {"code": code, "reason": reason}}));
                    if reason == REPLACED {
                        let _ = replaced_tx.send(true);
                    }
                });
            }
        });
    let replaced = tokio::select! {
        () = shutdown_signal() => false,
        _ = replaced_rx.wait_for(|r| *r) => true,
    };
    client.stop_and_wait(Duration::from_secs(2)).await;
    if replaced {
        return Err(io::Error::other(REPLACED));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The control client

/// One request of `protolink clusterio ctl`.
#[derive(Debug, Subcommand)]
pub(crate) enum CtlCommand {
    /// Lists the slaves.
    ListSlaves,
    /// Lists the instances.
    ListInstances,
    /// Creates an instance (its configuration holds the `instance` group with ID and NAME and
    /// the `factorio` group with its initial values, as clusterctl's does).
    CreateInstance {
        /// The instance's name.
        #[arg(long)]
        name: String,
        /// The instance's id.
        #[arg(long)]
        id: i64,
    },
    /// Assigns an instance to a slave.
    AssignInstance {
        /// The instance.
        #[arg(long)]
        instance: i64,
        /// The slave.
        #[arg(long)]
        slave: i64,
    },
    /// Starts an instance.
    StartInstance {
        /// The instance.
        instance: i64,
    },
    /// Stops an instance.
    StopInstance {
        /// The instance.
        instance: i64,
    },
    /// Saves an instance's game.
    CreateSave {
        /// The instance.
        instance: i64,
    },
    /// Deletes an instance.
    DeleteInstance {
        /// The instance.
        instance: i64,
    },
    /// Sends an RCON command to an instance and prints its result.
    SendRcon {
        /// The instance.
        instance: i64,
        /// The command.
        command: String,
    },
    /// Prints an instance's configuration.
    GetConfig {
        /// The instance.
        instance: i64,
    },
    /// Sets one field of an instance's configuration.
    SetConfigField {
        /// The instance.
        instance: i64,
        /// The field.
        field: String,
        /// The new value (a string).
        value: String,
    },
    /// Prints the output of instances as JSON lines until interrupted.
    SubscribeOutput {
        /// The instances.
        #[arg(required = true)]
        instances: Vec<i64>,
    },
}

/// Prints every `instance_output` event.
struct OutputPrinter {
    out: Printer,
}

impl ControlWithMasterHandler for OutputPrinter {
    async fn instance_output(&self, message: cl::InstanceOutput) {
        self.out
            .line(serde_json::to_value(&message).unwrap_or_default());
    }
}

/// The peer's own error text, or what went wrong on the way.
fn request_error(error: RequestError) -> io::Error {
    match error {
        RequestError::Remote(remote) => io::Error::other(remote.message),
        other => io::Error::other(other),
    }
}

/// A reply as one JSON line (`{}` for replies without data).
fn reply_line<T: Serialize>(reply: Result<T, RequestError>) -> io::Result<Value> {
    let value = serde_json::to_value(reply.map_err(request_error)?).map_err(io::Error::other)?;
    Ok(if value.is_null() { json!({}) } else { value })
}

/// `protolink clusterio ctl`: one request, its reply as a JSON line.
pub(crate) async fn ctl(url: &str, token: String, command: CtlCommand) -> io::Result<()> {
    let out = Printer::stdout();
    let session = Session::new().with(cl::RegisterControl {
        token,
        agent: "protolink-ctl".to_owned(),
        version: VERSION.to_owned(),
    });
    let printer = out.clone();
    let link = connect::<ControlWithMaster>(url)
        .session(session)
        .handler(move |_| OutputPrinter { out: printer })
        .await
        .map_err(io::Error::other)?;
    let reply = match command {
        CtlCommand::ListSlaves => reply_line(link.list_slaves(cl::ListSlaves {}).await),
        CtlCommand::ListInstances => reply_line(link.list_instances(cl::ListInstances {}).await),
        CtlCommand::CreateInstance { name, id } => {
            let serialized_config = new_instance_config(id, &name);
            reply_line(
                link.create_instance(cl::CreateInstance { serialized_config })
                    .await,
            )
        }
        CtlCommand::AssignInstance { instance, slave } => reply_line(
            link.assign_instance_command(cl::AssignInstanceCommand {
                instance_id: instance,
                slave_id: slave,
            })
            .await,
        ),
        CtlCommand::StartInstance { instance } => reply_line(
            link.start_instance(cl::StartInstance {
                instance_id: instance,
            })
            .await,
        ),
        CtlCommand::StopInstance { instance } => reply_line(
            link.stop_instance(cl::StopInstance {
                instance_id: instance,
            })
            .await,
        ),
        CtlCommand::CreateSave { instance } => reply_line(
            link.create_save(cl::CreateSave {
                instance_id: instance,
            })
            .await,
        ),
        CtlCommand::DeleteInstance { instance } => reply_line(
            link.delete_instance(cl::DeleteInstance {
                instance_id: instance,
            })
            .await,
        ),
        CtlCommand::SendRcon { instance, command } => reply_line(
            link.send_rcon(cl::SendRcon {
                instance_id: instance,
                command,
            })
            .await,
        ),
        CtlCommand::GetConfig { instance } => reply_line(
            link.get_instance_config(cl::GetInstanceConfig {
                instance_id: instance,
            })
            .await,
        ),
        CtlCommand::SetConfigField {
            instance,
            field,
            value,
        } => reply_line(
            link.set_instance_config_field(cl::SetInstanceConfigField {
                instance_id: instance,
                field,
                value,
            })
            .await,
        ),
        CtlCommand::SubscribeOutput { instances } => {
            link.set_instance_output_subscriptions(cl::SetInstanceOutputSubscriptions {
                instance_ids: instances.clone(),
            })
            .await
            .map_err(request_error)?;
            out.line(json!({"subscribed": instances}));
            tokio::select! {
                () = shutdown_signal() => {}
                (code, reason) = link.closed() => {
                    return Err(io::Error::other(format!("the master closed the link ({code}): {reason}")));
                }
            }
            Ok(Value::Null)
        }
    };
    let result = reply.map(|value| {
        if !value.is_null() {
            out.line(value);
        }
    });
    // Returns once the close frame is written.
    link.close_gracefully(close::NORMAL, "quit").await;
    result
}
