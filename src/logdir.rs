//! The log directory: named topics, each a folder of partitions, under one lock.
//!
//! ```text
//! <dir>/
//!   .lock                     exclusive lock held while open
//!   partlog.meta              marks the directory as ours, with its format version
//!   topics/<topic>/topic.properties
//!   topics/<topic>/<partition>/   one partition directory each (segments, checkpoint)
//!   staging/                  topics being created (removed at open)
//!   trash/                    topics being deleted (removed at open)
//! ```
//!
//! Creating a topic builds it in `staging/` and renames it into `topics/`; deleting renames it
//! into `trash/` and then removes it. Both renames are atomic and made durable with directory
//! fsyncs, so after a crash a topic either fully exists or is fully gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::cleaner::{CleanerOptions, CompactionReport, Throttle};
use crate::clock::{Clock, SystemClock};
use crate::config::TopicConfig;
use crate::consumer::group::Coordinator;
use crate::consumer::{Consumer, ConsumerConfig, GroupDescription, OffsetSpec, TopicPartition};
use crate::error::{Error, IoContext, Result};
use crate::fs::{DirLock, EntryKind, Fs, OpenMode, StdFs, durable_replace};
use crate::maintenance::{Maintenance, MaintenanceWorker, PartitionRef};
use crate::partition::{Partition, PartitionOptions, RecoveryMode};
use crate::retention::RetentionReport;
use crate::segment::{DEFAULT_OPEN_SEGMENTS, HandleCache};
use crate::topic::{Topic, TopicDescription, meta, validate_topic_name};

pub(crate) const META_FILE: &str = "partlog.meta";
const META_MAGIC: &str = "partlog log directory";
const META_VERSION: u32 = 1;
pub(crate) const TOPICS: &str = "topics";
const STAGING: &str = "staging";
const TRASH: &str = "trash";
/// The longest file name the common file systems allow, in bytes.
const MAX_FILE_NAME: usize = 255;

/// Options for opening a [`LogDir`].
#[derive(Debug, Clone)]
pub struct LogDirOptions {
    defaults: TopicConfig,
    fs: Fs,
    clock: Arc<dyn Clock>,
    open_segments: usize,
    recovery: RecoveryMode,
    mmap_reads: bool,
    cleaner: CleanerOptions,
    offsets_partitions: u32,
    offsets_retention_ms: u64,
}

/// Default `offsets.topic.num.partitions` here: 1 (Kafka's 50 spread a cluster's groups over
/// brokers; in one process one partition suffices unless many groups commit at once).
pub const DEFAULT_OFFSETS_PARTITIONS: u32 = 1;
/// Default `offsets.retention.minutes`: 7 days, in ms.
pub const DEFAULT_OFFSETS_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

impl Default for LogDirOptions {
    fn default() -> Self {
        LogDirOptions {
            defaults: TopicConfig::default(),
            fs: StdFs::shared(),
            clock: Arc::new(SystemClock),
            open_segments: DEFAULT_OPEN_SEGMENTS,
            recovery: RecoveryMode::Strict,
            mmap_reads: cfg!(target_os = "linux"),
            cleaner: CleanerOptions::default(),
            offsets_partitions: DEFAULT_OFFSETS_PARTITIONS,
            offsets_retention_ms: DEFAULT_OFFSETS_RETENTION_MS,
        }
    }
}

impl LogDirOptions {
    /// Directory-wide topic defaults (Kafka's broker-level topic defaults): every topic
    /// inherits each key it does not set itself from here, and from Kafka's defaults what is
    /// not set here either. Not stored: a topic without an override of a key follows the
    /// defaults the directory is opened with.
    pub fn defaults(mut self, config: TopicConfig) -> Self {
        self.defaults = config;
        self
    }
    /// Uses another file system (the simulated one in tests). Unstable: only with the
    /// `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    pub fn fs(mut self, fs: Fs) -> Self {
        self.fs = fs;
        self
    }
    /// Uses another clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// How many sealed segments (across all partitions) stay open at once (default
    /// [`DEFAULT_OPEN_SEGMENTS`]).
    pub fn max_open_segments(mut self, n: usize) -> Self {
        self.open_segments = n;
        self
    }
    /// What recovery does with mid-log damage.
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }
    /// Whether reads are served from read-only memory maps (see
    /// [`PartitionOptions::mmap_reads`]).
    pub fn mmap_reads(mut self, on: bool) -> Self {
        self.mmap_reads = on;
        self
    }
    /// Compaction engine settings for the directory's maintenance driver (Kafka's
    /// `log.cleaner.*`).
    pub fn cleaner(mut self, options: CleanerOptions) -> Self {
        self.cleaner = options;
        self
    }
    /// Partitions of `__consumer_offsets` when it is created (Kafka's
    /// `offsets.topic.num.partitions`, default [`DEFAULT_OFFSETS_PARTITIONS`]).
    pub fn offsets_topic_num_partitions(mut self, n: u32) -> Self {
        self.offsets_partitions = n.max(1);
        self
    }
    /// How long the committed offsets of an empty group are kept (Kafka's
    /// `offsets.retention.minutes`, default 7 days); the maintenance driver expires them.
    pub fn offsets_retention(mut self, d: std::time::Duration) -> Self {
        self.offsets_retention_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }
    /// Opens or creates the log directory.
    ///
    /// # Errors
    /// [`Error::NotALogDir`] for a non-empty directory partlog did not create,
    /// [`Error::Locked`] when another handle has it open, [`Error::UnsupportedVersion`],
    /// [`Error::InvalidConfig`] for bad defaults, [`Error::Io`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<LogDir> {
        LogDir::open_inner(path.as_ref(), self)
    }
}

#[derive(Debug)]
struct DirInner {
    path: PathBuf,
    opts: LogDirOptions,
    cache: Arc<HandleCache>,
    topics: Mutex<HashMap<String, Topic>>,
    /// Serializes create / delete / alter / add-partitions.
    admin: Mutex<()>,
    closed: AtomicBool,
    nonce: AtomicU64,
    lock: Mutex<Option<Box<dyn DirLock>>>,
    /// The cleaner's I/O limit, shared by every pass in the directory.
    throttle: Arc<Throttle>,
    /// Consumer groups and committed offsets.
    coordinator: Coordinator,
}

/// A directory of topics: what an application opens.
///
/// ```
/// use partlog::{LogDir, Record, TopicConfig};
/// # let tmp = tempfile::tempdir()?;
/// let dir = LogDir::open(tmp.path().join("data"))?;
/// let orders = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
/// let at = orders.append(Record::new().key("customer-42").value("{\"total\":99}"))?;
/// for rec in orders.partition(at.partition)?.read(at.offset, 1 << 20)?.iter() {
///     assert_eq!(rec.key(), Some(&b"customer-42"[..]));
/// }
/// assert_eq!(at.partition, orders.partition_for_key(b"customer-42"));
/// dir.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogDir {
    inner: Arc<DirInner>,
}

impl LogDir {
    /// Opens (creating if needed) a log directory with default options.
    ///
    /// # Errors
    /// As [`LogDirOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<LogDir> {
        LogDirOptions::default().open(path)
    }

    /// Opens a log directory read-only, for a reader outside the process that writes it (a
    /// CLI, a backup, a tail): no lock is taken or waited for, nothing is recovered, not a
    /// byte is written. See [`ReadOnlyLogDir`](crate::ReadOnlyLogDir).
    ///
    /// # Errors
    /// As [`ReadOnlyLogDir::open`](crate::ReadOnlyLogDir::open).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<crate::ReadOnlyLogDir> {
        crate::ReadOnlyLogDir::open(path)
    }

    /// Options for opening a log directory.
    pub fn options() -> LogDirOptions {
        LogDirOptions::default()
    }

    fn open_inner(path: &Path, opts: LogDirOptions) -> Result<LogDir> {
        opts.defaults.validate()?;
        let fs = Arc::clone(&opts.fs);
        match fs.entry_kind(path).at(path)? {
            None => {
                crate::fs::create_dir_durable(&*fs, path).at(path)?;
            }
            Some(EntryKind::Dir) => {}
            Some(_) => return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "not a directory".into() }),
        }
        // Nothing is written into a directory that is not ours: check before taking the lock
        // (which creates `.lock`), and again under it (another process may be initialising).
        check_ownership(&*fs, path)?;
        let lock = crate::partition::take_dir_lock(&*fs, path)?;
        let meta_path = path.join(META_FILE);
        if !check_ownership(&*fs, path)? {
            for d in [TOPICS, STAGING, TRASH] {
                let p = path.join(d);
                fs.create_dir_all(&p).at(&p)?;
            }
            let body = format!("{META_MAGIC}\nversion={META_VERSION}\n");
            durable_replace(&*fs, &meta_path, body.as_bytes()).at(&meta_path)?;
        }
        for d in [TOPICS, STAGING, TRASH] {
            let p = path.join(d);
            fs.create_dir_all(&p).at(&p)?;
        }
        // Finish interrupted creations and deletions.
        for d in [STAGING, TRASH] {
            let p = path.join(d);
            let mut removed = false;
            for e in fs.read_dir(&p).at(&p)? {
                let victim = p.join(&e.name);
                match e.kind {
                    EntryKind::Dir => fs.remove_dir_all(&victim).at(&victim)?,
                    _ => fs.remove_file(&victim).at(&victim)?,
                }
                removed = true;
            }
            if removed {
                fs.sync_dir(&p).at(&p)?;
            }
        }
        fs.sync_dir(path).at(path)?;
        let cache = HandleCache::new(opts.open_segments);
        let throttle = Arc::new(Throttle::new(opts.cleaner.io_max_bytes_per_second));
        Ok(LogDir {
            inner: Arc::new(DirInner {
                path: path.to_path_buf(),
                opts,
                cache,
                topics: Mutex::new(HashMap::new()),
                admin: Mutex::new(()),
                closed: AtomicBool::new(false),
                nonce: AtomicU64::new(0),
                lock: Mutex::new(Some(lock)),
                throttle,
                coordinator: Coordinator::default(),
            }),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The internal topic `name`, created with `config` if it does not exist yet.
    pub(crate) fn internal_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        match self.topic(name) {
            Err(Error::TopicNotFound { .. }) => match self.create_topic_inner(name, config) {
                Err(Error::TopicExists { .. }) => self.topic(name),
                r => r,
            },
            r => r,
        }
    }

    /// Whether the internal topic `name` exists.
    pub(crate) fn has_internal_topic(&self, name: &str) -> bool {
        self.inner.topics.lock().contains_key(name)
            || self.inner.opts.fs.entry_kind(&self.topic_dir(name)).ok().flatten().is_some()
    }

    /// Partitions `__consumer_offsets` is created with.
    pub(crate) fn offsets_partitions(&self) -> u32 {
        self.inner.opts.offsets_partitions
    }

    /// The directory's clock, now.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.opts.clock.now_ms()
    }

    pub(crate) fn coordinator(&self) -> &Coordinator {
        &self.inner.coordinator
    }

    /// A consumer of this directory's topics (see [`Consumer`]).
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        self.check_open()?;
        Ok(Consumer::new(self.clone(), config))
    }

    /// Consumer groups with members or committed offsets (`kafka-consumer-groups --list`).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged offset record; [`Error::Io`].
    pub fn list_groups(&self) -> Result<Vec<String>> {
        self.check_open()?;
        self.coordinator().list(self)
    }

    /// A group's members, assignment, committed offsets and lag per partition
    /// (`kafka-consumer-groups --describe`).
    ///
    /// # Errors
    /// [`Error::GroupNotFound`]; as [`list_groups`](Self::list_groups).
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.check_open()?;
        self.coordinator().describe(self, group)
    }

    /// Moves the committed offsets of an empty group (`kafka-consumer-groups
    /// --reset-offsets`): of `partitions`, or every partition it has an offset for when empty.
    /// Only a plan unless `execute`, as Kafka's tool. Returns the new offsets.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while it has members; [`Error::TopicNotFound`],
    /// [`Error::PartitionNotFound`]; I/O errors.
    pub fn reset_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
        execute: bool,
    ) -> Result<Vec<(TopicPartition, u64)>> {
        self.check_open()?;
        self.coordinator().reset(self, group, partitions, to, execute)
    }

    /// Deletes an empty group and its committed offsets (`kafka-consumer-groups --delete`).
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`], [`Error::GroupNotFound`]; I/O errors.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.check_open()?;
        self.coordinator().delete(self, group)
    }

    /// Expires the committed offsets of groups empty for `offsets.retention.minutes` (the
    /// maintenance driver calls this); returns the groups expired.
    pub(crate) fn expire_offsets(&self) -> Result<Vec<String>> {
        self.coordinator().expire(self, self.inner.opts.offsets_retention_ms)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Every partition of every topic, opening the topics not open yet.
    pub(crate) fn all_partitions(&self) -> Result<Vec<(String, Partition)>> {
        let mut out = Vec::new();
        for name in self.topics()? {
            let t = self.topic(&name)?;
            out.extend(t.partitions().into_iter().map(|p| (name.clone(), p)));
        }
        Ok(out)
    }

    /// The directory's maintenance driver, to step from the application's own thread
    /// ([`Maintenance::run_once`]).
    pub fn maintenance(&self) -> Maintenance {
        Maintenance::new(self.clone(), self.inner.opts.cleaner.clone(), Arc::clone(&self.inner.throttle))
    }

    /// Starts the maintenance driver on one background thread (`partlog-maintenance`), which
    /// runs it whenever it asks to until [`MaintenanceWorker::stop`], or until the directory
    /// is closed.
    ///
    /// # Errors
    /// [`Error::Io`] when the thread cannot be started.
    pub fn start_maintenance(&self) -> Result<MaintenanceWorker> {
        MaintenanceWorker::start(self.maintenance()).map_err(|e| Error::io(&self.inner.path, e))
    }

    /// Runs retention on every partition now (see [`Partition::run_retention`]).
    ///
    /// # Errors
    /// The first error; partitions before it were processed.
    pub fn run_retention(&self) -> Result<Vec<(PartitionRef, RetentionReport)>> {
        let mut out = Vec::new();
        for (topic, p) in self.all_partitions()? {
            let r = p.run_retention()?;
            out.push((PartitionRef { topic, partition: p.id() }, r));
        }
        Ok(out)
    }

    /// Runs one compaction pass on every partition of every compacted topic now, with the
    /// directory's cleaner options (see [`Partition::compact`]).
    ///
    /// # Errors
    /// The first error; partitions before it were processed.
    pub fn compact(&self) -> Result<Vec<(PartitionRef, CompactionReport)>> {
        let mut out = Vec::new();
        for (topic, p) in self.all_partitions()? {
            if !p.config().cleanup_policy.compact {
                continue;
            }
            let r = p.compact_throttled(&self.inner.opts.cleaner, &self.inner.throttle, true)?;
            out.push((PartitionRef { topic, partition: p.id() }, r));
        }
        Ok(out)
    }

    /// The directory-wide topic defaults set when it was opened.
    pub fn default_topic_config(&self) -> TopicConfig {
        self.inner.opts.defaults.clone()
    }

    fn topic_dir(&self, name: &str) -> PathBuf {
        self.inner.path.join(TOPICS).join(name)
    }

    fn partition_options(&self, config: &TopicConfig) -> PartitionOptions {
        Partition::options()
            .config(config.clone())
            .with_fs(Arc::clone(&self.inner.opts.fs))
            .clock(Arc::clone(&self.inner.opts.clock))
            .recovery(self.inner.opts.recovery)
            .mmap_reads(self.inner.opts.mmap_reads)
            .handle_cache(Arc::clone(&self.inner.cache))
    }

    /// A name for `topic`'s directory while it is in `staging/` or `trash/`: as much of the
    /// topic name as fits in a file name (255 bytes) with a unique suffix, so the longest
    /// valid topic names work too.
    fn transit_name(&self, topic: &str) -> String {
        let n = self.inner.nonce.fetch_add(1, Ordering::Relaxed);
        let suffix = format!(".{}-{}-{n}", std::process::id(), self.inner.opts.clock.now_ms());
        let keep = topic.len().min(MAX_FILE_NAME.saturating_sub(suffix.len()));
        format!("{}{suffix}", topic.get(..keep).unwrap_or(""))
    }

    /// Names of the application's topics, sorted (internal topics, whose names start with
    /// `__`, are left out: see [`list_topics`](Self::list_topics)).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Closed`].
    pub fn topics(&self) -> Result<Vec<String>> {
        self.list_topics(false)
    }

    /// Names of all topics, sorted; internal ones (`__consumer_offsets`) only when asked.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Closed`].
    pub fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        self.check_open()?;
        let p = self.inner.path.join(TOPICS);
        let mut names: Vec<String> = self
            .inner
            .opts
            .fs
            .read_dir(&p)
            .at(&p)?
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .filter_map(|e| e.name.into_string().ok())
            .filter(|n| validate_topic_name(n).is_ok())
            .filter(|n| include_internal || !is_internal(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates a topic. `config`'s overrides are stored with the topic; every other key is
    /// inherited from the directory defaults (the partition count too, when `config` does not
    /// set it). The whole topic appears atomically.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`], [`Error::TopicExists`], [`Error::InvalidConfig`],
    /// [`Error::Io`].
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        if is_internal(name) {
            return Err(Error::InvalidTopicName {
                name: name.to_owned(),
                reason: "names starting with `__` are reserved for internal topics".into(),
            });
        }
        self.create_topic_inner(name, config)
    }

    fn create_topic_inner(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        self.check_open()?;
        validate_topic_name(name)?;
        let config = config.inherit_from(&self.inner.opts.defaults);
        config.validate()?;
        let _admin = self.inner.admin.lock();
        let fs = &*self.inner.opts.fs;
        let final_dir = self.topic_dir(name);
        if fs.entry_kind(&final_dir).at(&final_dir)?.is_some() {
            return Err(Error::TopicExists { name: name.to_owned() });
        }
        let staging = self.inner.path.join(STAGING).join(self.transit_name(name));
        fs.create_dir_all(&staging).at(&staging)?;
        let meta_path = staging.join(meta::FILE_NAME);
        let stored = config.clone().partitions(config.partitions);
        durable_replace(fs, &meta_path, &meta::encode(&stored)).at(&meta_path)?;
        for p in 0..config.partitions {
            let pd = staging.join(p.to_string());
            fs.create_dir_all(&pd).at(&pd)?;
        }
        fs.sync_dir(&staging).at(&staging)?;
        let staging_parent = self.inner.path.join(STAGING);
        fs.sync_dir(&staging_parent).at(&staging_parent)?;
        fs.rename(&staging, &final_dir).at(&final_dir)?;
        let topics = self.inner.path.join(TOPICS);
        fs.sync_dir(&topics).at(&topics)?;
        fs.sync_dir(&staging_parent).at(&staging_parent)?;
        drop(_admin);
        self.topic(name)
    }

    /// Opens an existing topic (recovering its partitions on first open).
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::InvalidTopicName`], [`Error::Corrupt`],
    /// [`Error::Io`].
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.check_open()?;
        validate_topic_name(name)?;
        let mut topics = self.inner.topics.lock();
        if let Some(t) = topics.get(name) {
            return Ok(t.clone());
        }
        let fs = &*self.inner.opts.fs;
        let dir = self.topic_dir(name);
        if fs.entry_kind(&dir).at(&dir)? != Some(EntryKind::Dir) {
            return Err(Error::TopicNotFound { name: name.to_owned() });
        }
        let config = read_topic_meta(fs, &dir)?.inherit_from(&self.inner.opts.defaults);
        // Partition directories past the count are leftovers of an interrupted add.
        for e in fs.read_dir(&dir).at(&dir)? {
            let Some(n) = e.name.to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if n >= config.partitions && e.kind == EntryKind::Dir {
                let p = dir.join(&e.name);
                fs.remove_dir_all(&p).at(&p)?;
            }
        }
        let mut parts = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            parts.push(self.partition_options(&config).partition_id(p).open(dir.join(p.to_string()))?);
        }
        let topic = Topic::new(name.to_owned(), config, self.inner.opts.defaults.clone(), parts);
        topics.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// Changes a topic's configuration (persisted atomically; applies to open partitions at
    /// once). The partition count cannot change here: use
    /// [`add_partitions`](Self::add_partitions).
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::InvalidConfig`], [`Error::Io`].
    pub fn alter_topic_config(&self, name: &str, changes: &[(&str, &str)]) -> Result<TopicConfig> {
        let topic = self.topic(name)?;
        let _admin = self.inner.admin.lock();
        let mut config = topic.config();
        for (k, v) in changes {
            config = config.set(k, v)?;
        }
        self.store_topic_config(&topic, config)
    }

    /// Removes topic-level overrides (Kafka's `kafka-configs --delete-config`): the keys go
    /// back to the directory defaults. Unknown keys and keys that were not set are ignored.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::Io`].
    pub fn delete_topic_config(&self, name: &str, keys: &[&str]) -> Result<TopicConfig> {
        let topic = self.topic(name)?;
        let _admin = self.inner.admin.lock();
        let current = topic.config();
        let mut kept = TopicConfig::default().partitions(current.partitions);
        for (k, v) in current.overrides() {
            if !keys.contains(&k) {
                kept = kept.set(k, &v)?;
            }
        }
        self.store_topic_config(&topic, kept.inherit_from(&self.inner.opts.defaults))
    }

    fn store_topic_config(&self, topic: &Topic, config: TopicConfig) -> Result<TopicConfig> {
        config.validate()?;
        let p = self.topic_dir(topic.name()).join(meta::FILE_NAME);
        durable_replace(&*self.inner.opts.fs, &p, &meta::encode(&config)).at(&p)?;
        for part in topic.partitions() {
            part.set_config(config.clone())?;
        }
        *topic.inner.config.write() = config.clone();
        Ok(config)
    }

    /// Grows a topic to `total` partitions. Existing data stays where it is, but keys now map
    /// over more partitions: a key may land in a different partition than before, as in Kafka.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `total` is not above the current count, and as
    /// [`topic`](Self::topic).
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<Topic> {
        let topic = self.topic(name)?;
        let _admin = self.inner.admin.lock();
        let config = topic.config();
        if total <= config.partitions {
            return Err(Error::config(
                "partitions",
                total,
                format!("must be above the current count {} (partitions cannot be removed)", config.partitions),
            ));
        }
        let dir = self.topic_dir(name);
        let mut added = Vec::new();
        let old = config.partitions;
        let config = config.partitions(total);
        for p in old..total {
            added.push(self.partition_options(&config).partition_id(p).open(dir.join(p.to_string()))?);
        }
        self.inner.opts.fs.sync_dir(&dir).at(&dir)?;
        let mp = dir.join(meta::FILE_NAME);
        durable_replace(&*self.inner.opts.fs, &mp, &meta::encode(&config)).at(&mp)?;
        let mut all = topic.partitions();
        all.extend(added);
        *topic.inner.partitions.write() = Arc::new(all);
        *topic.inner.config.write() = config;
        Ok(topic)
    }

    /// Deletes a topic and all its files. After a crash in the middle, the topic is either
    /// still complete or entirely gone. Handles to it fail with [`Error::TopicNotFound`].
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::Io`].
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.check_open()?;
        validate_topic_name(name)?;
        if is_internal(name) {
            return Err(Error::InvalidTopicName {
                name: name.to_owned(),
                reason: "internal topics cannot be deleted".into(),
            });
        }
        let _admin = self.inner.admin.lock();
        let fs = &*self.inner.opts.fs;
        let dir = self.topic_dir(name);
        if fs.entry_kind(&dir).at(&dir)? != Some(EntryKind::Dir) {
            return Err(Error::TopicNotFound { name: name.to_owned() });
        }
        if let Some(t) = self.inner.topics.lock().remove(name) {
            t.inner.deleted.store(true, Ordering::Release);
            for p in t.partitions() {
                let _ = p.close();
            }
        }
        let trash = self.inner.path.join(TRASH).join(self.transit_name(name));
        fs.rename(&dir, &trash).at(&dir)?;
        let topics = self.inner.path.join(TOPICS);
        fs.sync_dir(&topics).at(&topics)?;
        let trash_dir = self.inner.path.join(TRASH);
        fs.sync_dir(&trash_dir).at(&trash_dir)?;
        fs.remove_dir_all(&trash).at(&trash)?;
        fs.sync_dir(&trash_dir).at(&trash_dir)?;
        Ok(())
    }

    /// Describes a topic: partitions, offsets, segments, sizes, configuration.
    ///
    /// # Errors
    /// As [`topic`](Self::topic).
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        Ok(self.topic(name)?.describe())
    }

    /// Closes every open topic (syncing and writing clean-shutdown checkpoints) and releases
    /// the directory lock.
    ///
    /// # Errors
    /// The first error from closing a partition.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let topics: Vec<Topic> = self.inner.topics.lock().drain().map(|(_, t)| t).collect();
        let mut first = Ok(());
        for t in topics {
            for p in t.partitions() {
                if let Err(e) = p.close()
                    && first.is_ok()
                {
                    first = Err(e);
                }
            }
        }
        self.inner.lock.lock().take();
        first
    }
}

/// Whether `path` is a partlog directory (`Ok(true)`), an empty one partlog may initialise
/// (`Ok(false)`), or somebody else's ([`Error::NotALogDir`]).
/// Internal topics' names start with `__` (Kafka's rule for `__consumer_offsets` and kin).
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

fn check_ownership(fs: &dyn crate::fs::FileSystem, path: &Path) -> Result<bool> {
    let meta_path = path.join(META_FILE);
    if fs.entry_kind(&meta_path).at(&meta_path)?.is_some() {
        check_meta(fs, &meta_path)?;
        return Ok(true);
    }
    let foreign = fs
        .read_dir(path)
        .at(path)?
        .into_iter()
        .filter_map(|e| e.name.into_string().ok())
        .find(|n| !matches!(n.as_str(), ".lock" | TOPICS | STAGING | TRASH) && !n.starts_with(META_FILE));
    match foreign {
        Some(first) => Err(Error::NotALogDir {
            path: path.to_path_buf(),
            reason: format!("it holds `{first}` and no {META_FILE}"),
        }),
        None => Ok(false),
    }
}

pub(crate) fn check_meta(fs: &dyn crate::fs::FileSystem, path: &Path) -> Result<()> {
    let f = fs.open(path, OpenMode::Read).at(path)?;
    let len = f.len().at(path)?.min(4096);
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0).at(path)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.lines();
    if lines.next() != Some(META_MAGIC) {
        let dir = path.parent().unwrap_or(path).to_path_buf();
        return Err(Error::NotALogDir { path: dir, reason: format!("{META_FILE} is not ours") });
    }
    let version = lines.find_map(|l| l.strip_prefix("version=")).and_then(|v| v.trim().parse::<u32>().ok());
    match version {
        Some(META_VERSION) => Ok(()),
        Some(found) => Err(Error::UnsupportedVersion { path: path.to_path_buf(), found, supported: META_VERSION }),
        None => Err(Error::corrupt(path, 0, crate::error::CorruptKind::Metadata)),
    }
}

pub(crate) fn read_topic_meta(fs: &dyn crate::fs::FileSystem, dir: &Path) -> Result<TopicConfig> {
    let p = dir.join(meta::FILE_NAME);
    let f = fs.open(&p, OpenMode::Read).at(&p)?;
    let len = f.len().at(&p)?;
    if len > 1 << 20 {
        return Err(Error::corrupt(&p, 0, crate::error::CorruptKind::Metadata));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0).at(&p)?;
    meta::decode(&p, &buf)
}

impl Drop for DirInner {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::Acquire) {
            for (_, t) in self.topics.lock().drain() {
                for p in t.partitions() {
                    let _ = p.close();
                }
            }
        }
    }
}
