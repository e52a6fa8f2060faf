//! protolink-codegen: definition files in, typed Rust bindings out.
//!
//! A build script compiles every definition in a folder with one call:
//!
//! ```no_run
//! # #![allow(clippy::needless_doctest_main)]
//! // build.rs
//! fn main() {
//!     if let Err(e) = protolink_codegen::compile(&["../protocol-defs"]) {
//!         eprintln!("{e}");
//!         std::process::exit(1);
//!     }
//! }
//! ```
//!
//! and the crate includes each protocol's module with `protolink::include_protocol!("litecord");`.
//! [`Config`] sets where output goes and how paths are shown. A mistake in a definition fails the
//! build with rustc-style diagnostics: `file:line:col`, the line, a caret and a `help:`.
//!
//! The pipeline: [`syntax`] parses each file, [`model`] checks them together (a protocol may
//! `extend` one in another file), and [`emit`] renders each checked protocol: Rust
//! ([`emit::rust`]), JSON Schemas of its frames ([`emit::schema`], also written by a build script
//! with [`Config::schema_out_dir`]), an AsyncAPI document ([`emit::asyncapi`]), a reference
//! for its users ([`emit::docs`]) and TypeScript types ([`emit::ts`]). [`diff`] compares two checked versions of a protocol and says
//! which changes break existing peers.
#![forbid(unsafe_code)]

pub mod diagnostics;
pub mod diff;
pub mod emit;
pub mod model;
mod naming;
pub mod syntax;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use diagnostics::{Diagnostics, SourceMap};

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Definitions have errors; `rendered` holds every diagnostic, rendered like rustc's.
    #[error("{rendered}")]
    Definitions {
        /// The rendered diagnostics.
        rendered: String,
        /// How many errors.
        errors: usize,
    },
    /// A [`Config::type_attribute`] names nothing, or is not an attribute.
    #[error("type_attribute {path:?}: {why}")]
    TypeAttribute {
        /// The path given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// A [`Config::extern_type`] names no type of the definitions, or no Rust path.
    #[error("extern_type {path:?}: {why}")]
    ExternType {
        /// The definition path given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// Neither `Config::out_dir` nor `OUT_DIR` says where to write.
    #[error("no output folder: set Config::out_dir or run from a build script")]
    NoOutDir,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The protocol's name.
    pub protocol: String,
    /// The file name, `{protocol}.rs` (for other outputs, the path under the output folder).
    pub file_name: String,
    /// The formatted text: Rust source, or another output's text.
    pub code: String,
}

/// The result of checking definitions: the sources read, what was found, and what checked.
#[derive(Debug)]
pub struct Checked {
    /// Every file read.
    pub sources: SourceMap,
    /// Every diagnostic, sorted by position.
    pub diagnostics: Diagnostics,
    /// The protocols that checked cleanly, bases before extensions.
    pub protocols: Vec<model::Protocol>,
}

/// Options for a run; methods take `&mut self` and return it, as prost-build's do.
#[derive(Debug, Clone, Default)]
pub struct Config {
    out_dir: Option<PathBuf>,
    display_base: Option<PathBuf>,
    cargo_directives: bool,
    /// `(path, attributes)` from [`Config::type_attribute`].
    type_attributes: Vec<(String, String)>,
    schema_out_dir: Option<PathBuf>,
    /// Where [`Config::ts_out_dir`], [`Config::docs_out_dir`] and [`Config::asyncapi_out_dir`]
    /// write, when set.
    ts_out_dir: Option<PathBuf>,
    docs_out_dir: Option<PathBuf>,
    asyncapi_out_dir: Option<(PathBuf, emit::asyncapi::Server)>,
    /// Where a base protocol's generated module is, from [`Config::base_path`].
    base_paths: std::collections::BTreeMap<String, String>,
    /// `(PROTOCOL.Type, Rust path)` from [`Config::extern_type`].
    extern_types: Vec<(String, String)>,
}

impl Config {
    /// Defaults: output to `OUT_DIR`, paths shown as given, no cargo directives.
    pub fn new() -> Self {
        Config::default()
    }

    /// Writes generated files to `dir` instead of `OUT_DIR`.
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Shows paths in diagnostics and `@generated` headers relative to `dir`.
    pub fn display_base(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.display_base = Some(dir.into());
        self
    }

    /// Adds attributes to generated types and messages, as prost-build's `type_attribute`:
    /// `path` is `PROTOCOL.NAME` (a type or message as the definition declares it), `PROTOCOL`
    /// (all of that protocol's) or `.` (all of every protocol's); `attributes` are outer
    /// attributes, such as `#[derive(Hash, Eq)]`. They go on structs and enums (type aliases
    /// have no item of their own); a path that names nothing is an error.
    ///
    /// ```no_run
    /// protolink_codegen::Config::new()
    ///     .type_attribute("chat.RoomName", "#[derive(Hash, Eq)]")
    ///     .compile(&["protocols"])
    ///     .unwrap();
    /// ```
    pub fn type_attribute(&mut self, path: &str, attributes: &str) -> &mut Self {
        self.type_attributes
            .push((path.to_owned(), attributes.to_owned()));
        self
    }

    /// Also writes the JSON Schemas of every protocol's frames (see [`emit::schema`]) under
    /// `dir` when compiling: `dir/PROTOCOL/client-to-server.schema.json`, one file per message
    /// in `dir/PROTOCOL/messages/`. Like the Rust files, a schema whose text did not change is
    /// not rewritten.
    ///
    /// ```no_run
    /// // build.rs: the Rust into OUT_DIR, the schemas where the web client's build finds them.
    /// protolink_codegen::Config::new()
    ///     .cargo_directives(true)
    ///     .schema_out_dir("web/schemas")
    ///     .compile(&["protocols"])
    ///     .unwrap();
    /// ```
    pub fn schema_out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.schema_out_dir = Some(dir.into());
        self
    }

    /// Also writes the TypeScript of every protocol (`PROTOCOL.ts`, see [`emit::ts`]) and the
    /// runtime its clients import (`protolink.ts`) under `dir` when compiling, as
    /// `protolink ts` does: a web client's sources stay in step with the Rust build.
    pub fn ts_out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.ts_out_dir = Some(dir.into());
        self
    }

    /// Also writes every protocol's reference for its users (Markdown and one HTML page, see
    /// [`emit::docs`]) under `dir` when compiling, as `protolink docs` does.
    pub fn docs_out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.docs_out_dir = Some(dir.into());
        self
    }

    /// Also writes an AsyncAPI 3.0 document per protocol (`PROTOCOL.asyncapi.json`, see
    /// [`emit::asyncapi`]) for `server` under `dir` when compiling, as `protolink asyncapi`
    /// does.
    pub fn asyncapi_out_dir(
        &mut self,
        dir: impl Into<PathBuf>,
        server: emit::asyncapi::Server,
    ) -> &mut Self {
        self.asyncapi_out_dir = Some((dir.into(), server));
        self
    }

    /// Where the generated module of `base` is, as a Rust path from inside the module of a
    /// protocol that `extends` it (default `super::BASE`: both included side by side, as one
    /// `include_protocol!` each in the same module). An extension uses its base's types and
    /// messages from there rather than generating its own, so `chat::Subscribe` is
    /// `socketcluster::Subscribe`; only the extension's sides are new.
    ///
    /// ```no_run
    /// // build.rs: `socketcluster` is included at `crate::wire::socketcluster`.
    /// protolink_codegen::Config::new()
    ///     .base_path("socketcluster", "crate::wire::socketcluster")
    ///     .compile(&["protocols"])
    ///     .unwrap();
    /// ```
    pub fn base_path(&mut self, base: &str, path: &str) -> &mut Self {
        self.base_paths.insert(base.to_owned(), path.to_owned());
        self
    }

    /// Uses a Rust type of the program for a named type of a definition, as prost-build's
    /// `extern_path`: `path` is `PROTOCOL.Type` as declared, `rust` a path from inside the
    /// generated module (`crate::units::Celsius`). The generated module re-exports it under the
    /// type's name instead of generating one. The type must serialise as the definition says
    /// (serde), derive what generated types derive (`Debug`, `Clone`, `PartialEq`,
    /// `schemars::JsonSchema`), and implement protolink's decoding and `Validate`, which
    /// `protolink::extern_type!` writes for a type of the program's own crate; the definition's constraints on the type are then the type's to
    /// keep. Types only: messages are always generated.
    ///
    /// ```no_run
    /// protolink_codegen::Config::new()
    ///     .extern_type("weather.Reading", "crate::units::Reading")
    ///     .compile(&["protocols"])
    ///     .unwrap();
    /// ```
    pub fn extern_type(&mut self, path: &str, rust: &str) -> &mut Self {
        self.extern_types.push((path.to_owned(), rust.to_owned()));
        self
    }

    /// The extern types of each protocol, by the type's declared name; an error for a path that
    /// names no type or a Rust path that does not parse.
    fn extern_types_by_protocol(
        &self,
        protocols: &[model::Protocol],
    ) -> Result<HashMap<String, Vec<(String, String)>>, Error> {
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (path, rust) in &self.extern_types {
            let bad = |why: String| Error::ExternType {
                path: path.clone(),
                why,
            };
            if syn::parse_str::<syn::Path>(rust).is_err() {
                return Err(bad(format!("`{rust}` is not a Rust path")));
            }
            let Some((protocol, name)) = path.split_once('.') else {
                return Err(bad("write PROTOCOL.Type".to_owned()));
            };
            let Some(p) = protocols.iter().find(|p| p.name == protocol) else {
                return Err(bad(format!("no protocol `{protocol}`")));
            };
            if !p.types.iter().any(|t| t.name == name) {
                let why = if p.messages.iter().any(|m| m.name == name) {
                    format!("`{name}` is a message; only types can be mapped")
                } else {
                    format!("`{protocol}` declares no type `{name}`")
                };
                return Err(bad(why));
            }
            out.entry(p.name.clone())
                .or_default()
                .push((name.to_owned(), rust.clone()));
        }
        Ok(out)
    }

    /// Prints `cargo:rerun-if-changed` for every input file and folder (for build scripts).
    pub fn cargo_directives(&mut self, on: bool) -> &mut Self {
        self.cargo_directives = on;
        self
    }

    /// Reads and checks `inputs` (files, or folders whose `*.protocol` files are all read).
    pub fn check(&self, inputs: &[impl AsRef<Path>]) -> Result<Checked, Error> {
        let mut paths = Vec::new();
        for input in inputs {
            let input = input.as_ref();
            if self.cargo_directives {
                println!("cargo:rerun-if-changed={}", input.display());
            }
            if input.is_dir() {
                let entries = fs::read_dir(input).map_err(|source| Error::Io {
                    path: input.into(),
                    source,
                })?;
                let mut found: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "protocol"))
                    .collect();
                found.sort();
                paths.extend(found);
            } else {
                paths.push(input.to_path_buf());
            }
        }
        let mut sources = Vec::new();
        for path in paths {
            if self.cargo_directives {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            let bytes = fs::read(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            sources.push((path, bytes));
        }
        Ok(self.check_bytes(&sources))
    }

    /// Checks definitions already in memory, each given as its path (shown in diagnostics, and
    /// relative to [`Config::display_base`] when inside it) and its text. A protocol that
    /// `extends` another must be checked together with its base.
    ///
    /// This is what [`Config::check`] does once it has read the files. It cannot fail: whatever
    /// the text, every problem is a diagnostic in the result.
    pub fn check_sources(&self, sources: &[(PathBuf, String)]) -> Checked {
        self.check_decoded(sources.iter().map(|(path, text)| (path, text.as_bytes())))
    }

    /// [`Config::check_sources`] for files as bytes: a file that is not valid UTF-8 is reported
    /// (E0006, at its first invalid byte), read with U+FFFD in place of each invalid sequence,
    /// and checked as usual.
    pub fn check_bytes(&self, sources: &[(PathBuf, Vec<u8>)]) -> Checked {
        self.check_decoded(sources.iter().map(|(path, bytes)| (path, bytes.as_slice())))
    }

    fn check_decoded<'a>(&self, sources: impl Iterator<Item = (&'a PathBuf, &'a [u8])>) -> Checked {
        let mut map = SourceMap::default();
        let mut diagnostics = Diagnostics::default();
        let mut files = Vec::new();
        for (path, bytes) in sources {
            let shown = self.shown(path);
            let decoded = syntax::decode(bytes);
            let id = map.add(shown.clone(), decoded.text());
            files.push((shown, decoded.parse(id, &mut diagnostics)));
        }
        let protocols = model::check(&files, &mut diagnostics);
        diagnostics.sort();
        Checked {
            sources: map,
            diagnostics,
            protocols,
        }
    }

    /// Checks `inputs` and renders every protocol, without writing anything.
    pub fn generate(&self, inputs: &[impl AsRef<Path>]) -> Result<Vec<Generated>, Error> {
        let checked = self.check_clean(inputs)?;
        let attributes = self.attributes_by_protocol(&checked.protocols)?;
        let externs = self.extern_types_by_protocol(&checked.protocols)?;
        Ok(checked
            .protocols
            .iter()
            .map(|p| {
                let source = p.source.display().to_string().replace('\\', "/");
                let extra = attributes.get(&p.name).map_or(&[][..], Vec::as_slice);
                let base = p.base.as_ref().and_then(|name| {
                    let protocol = checked.protocols.iter().find(|b| &b.name == name)?;
                    let path = self
                        .base_paths
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| format!("super::{}", emit::rust::module_name(name)));
                    Some((protocol, path))
                });
                let base = base
                    .as_ref()
                    .map(|(protocol, path)| emit::rust::Base { protocol, path });
                Generated {
                    protocol: p.name.clone(),
                    file_name: format!("{}.rs", p.name),
                    code: emit::rust::render_with(
                        p,
                        &source,
                        extra,
                        base,
                        externs.get(&p.name).map_or(&[][..], Vec::as_slice),
                    ),
                }
            })
            .collect())
    }

    /// Checks `inputs` and renders the JSON Schemas of every protocol's frames, without writing
    /// anything: one [`Generated`] per file, its `file_name` the path under the output folder
    /// (`litecord/client-to-server.schema.json`).
    pub fn generate_schemas(&self, inputs: &[impl AsRef<Path>]) -> Result<Vec<Generated>, Error> {
        let checked = self.check_clean(inputs)?;
        Ok(checked
            .protocols
            .iter()
            .flat_map(|p| {
                emit::schema::render(p).into_iter().map(|file| Generated {
                    protocol: p.name.clone(),
                    code: file.text(),
                    file_name: file.path,
                })
            })
            .collect())
    }

    /// Checks `inputs` and renders an AsyncAPI 3.0 document of every protocol (see
    /// [`emit::asyncapi`]), served as `server` says: one [`Generated`] per protocol, its
    /// `file_name` `PROTOCOL.asyncapi.json`.
    pub fn generate_asyncapi(
        &self,
        inputs: &[impl AsRef<Path>],
        server: &emit::asyncapi::Server,
    ) -> Result<Vec<Generated>, Error> {
        let checked = self.check_clean(inputs)?;
        Ok(checked
            .protocols
            .iter()
            .map(|p| Generated {
                protocol: p.name.clone(),
                file_name: format!("{}.asyncapi.json", p.name),
                code: emit::asyncapi::render(p, server),
            })
            .collect())
    }

    /// Checks `inputs` and renders the reference of every protocol (see [`emit::docs`]): for
    /// each, `PROTOCOL.md` and `PROTOCOL.html` (one self-contained page).
    pub fn generate_docs(&self, inputs: &[impl AsRef<Path>]) -> Result<Vec<Generated>, Error> {
        let checked = self.check_clean(inputs)?;
        Ok(checked
            .protocols
            .iter()
            .flat_map(|p| {
                let source = p.source.display().to_string().replace('\\', "/");
                let blocks = emit::docs::document(p, &source);
                [
                    Generated {
                        protocol: p.name.clone(),
                        file_name: format!("{}.md", p.name),
                        code: emit::docs::markdown(&blocks),
                    },
                    Generated {
                        protocol: p.name.clone(),
                        file_name: format!("{}.html", p.name),
                        code: emit::docs::html(&blocks),
                    },
                ]
            })
            .collect())
    }

    /// Checks `inputs` and renders the TypeScript types of every protocol (see [`emit::ts`]):
    /// one [`Generated`] per protocol, its `file_name` `PROTOCOL.ts`.
    pub fn generate_ts(&self, inputs: &[impl AsRef<Path>]) -> Result<Vec<Generated>, Error> {
        let checked = self.check_clean(inputs)?;
        Ok(checked
            .protocols
            .iter()
            .map(|p| {
                let source = p.source.display().to_string().replace('\\', "/");
                let base = p
                    .base
                    .as_ref()
                    .and_then(|name| checked.protocols.iter().find(|b| &b.name == name));
                Generated {
                    protocol: p.name.clone(),
                    file_name: format!("{}.ts", p.name),
                    code: emit::ts::render_with(p, &source, base),
                }
            })
            .collect())
    }

    /// [`Config::check`], with any error in a definition as [`Error::Definitions`].
    pub fn check_clean(&self, inputs: &[impl AsRef<Path>]) -> Result<Checked, Error> {
        let checked = self.check(inputs)?;
        if checked.diagnostics.has_errors() {
            return Err(Error::Definitions {
                rendered: checked.diagnostics.render(&checked.sources),
                errors: checked.diagnostics.error_count(),
            });
        }
        Ok(checked)
    }

    /// The `type_attribute`s, parsed, by protocol: `(Some(name) or None for all, attributes)`.
    #[allow(clippy::type_complexity)]
    fn attributes_by_protocol(
        &self,
        protocols: &[model::Protocol],
    ) -> Result<HashMap<String, Vec<(Option<String>, proc_macro2::TokenStream)>>, Error> {
        use syn::parse::Parser;
        let mut out: HashMap<String, Vec<_>> = HashMap::new();
        for (path, text) in &self.type_attributes {
            let bad = |why: String| Error::TypeAttribute {
                path: path.clone(),
                why,
            };
            let parsed = syn::Attribute::parse_outer
                .parse_str(text)
                .map_err(|e| bad(format!("`{text}` is not an attribute: {e}")))?;
            let tokens = quote::quote!(#(#parsed)*);
            let (protocol, name) = match path.split_once('.') {
                _ if path == "." => (None, None),
                Some((protocol, name)) => (Some(protocol), Some(name)),
                None => (Some(path.as_str()), None),
            };
            let mut found = false;
            for p in protocols {
                if protocol.is_some_and(|want| want != p.name) {
                    continue;
                }
                let declared = |n: &str| {
                    p.types.iter().any(|t| t.name == n) || p.messages.iter().any(|m| m.name == n)
                };
                if name.is_some_and(|n| !declared(n)) {
                    continue;
                }
                // An extension re-exports its base's items: their attributes go on the base's.
                let base = p
                    .base
                    .as_ref()
                    .and_then(|b| protocols.iter().find(|q| &q.name == b));
                if let (Some(base), Some(n)) = (base, name) {
                    let inherited = base.types.iter().any(|t| t.name == n)
                        || base.messages.iter().any(|m| m.name == n);
                    if inherited {
                        return Err(bad(format!(
                            "`{n}` is `{}`'s, which `{}` re-exports: use `{}.{n}`",
                            base.name, p.name, base.name
                        )));
                    }
                }
                found = true;
                out.entry(p.name.clone())
                    .or_default()
                    .push((name.map(str::to_owned), tokens.clone()));
            }
            if !found {
                return Err(bad("no protocol, type or message of that name".to_owned()));
            }
        }
        Ok(out)
    }

    /// Checks, renders and writes every protocol; files whose contents did not change are not
    /// rewritten, so cargo does not rebuild what includes them.
    pub fn compile(&self, inputs: &[impl AsRef<Path>]) -> Result<Vec<Generated>, Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        let generated = self.generate(inputs)?;
        write_changed(&out_dir, &generated)?;
        if let Some(dir) = &self.schema_out_dir {
            write_changed(dir, &self.generate_schemas(inputs)?)?;
        }
        if let Some(dir) = &self.ts_out_dir {
            let mut files = self.generate_ts(inputs)?;
            files.push(Generated {
                protocol: String::new(),
                file_name: emit::ts::RUNTIME_FILE.to_owned(),
                code: emit::ts::RUNTIME.to_owned(),
            });
            write_changed(dir, &files)?;
        }
        if let Some(dir) = &self.docs_out_dir {
            write_changed(dir, &self.generate_docs(inputs)?)?;
        }
        if let Some((dir, server)) = &self.asyncapi_out_dir {
            write_changed(dir, &self.generate_asyncapi(inputs, server)?)?;
        }
        Ok(generated)
    }

    fn shown(&self, path: &Path) -> PathBuf {
        match &self.display_base {
            Some(base) => diagnostics::display_path(path, base),
            None => path.to_path_buf(),
        }
    }
}

/// Writes each file under `dir` (creating the folders its path names), leaving alone a file
/// that already holds the same text, so cargo does not rebuild what includes it.
pub fn write_changed(dir: &Path, files: &[Generated]) -> Result<(), Error> {
    for g in files {
        let path = dir.join(&g.file_name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        if fs::read_to_string(&path).ok().as_deref() != Some(g.code.as_str()) {
            fs::write(&path, &g.code).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// The one call for build scripts: compiles `inputs` into `OUT_DIR` and prints
/// `cargo:rerun-if-changed` for each input file and folder.
pub fn compile(inputs: &[impl AsRef<Path>]) -> Result<Vec<Generated>, Error> {
    Config::new().cargo_directives(true).compile(inputs)
}
