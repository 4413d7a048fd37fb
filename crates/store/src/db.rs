//! The one seam between the store's logic and the two databases. Store logic is written
//! once against `Conn` (a connection or transaction on either backend), `Sql` (SQL text
//! with `$N` placeholders, which both of sqlx's drivers read, and bound values only) and
//! `Row` (typed columns). Each call dispatches on the backend here, so no store function
//! carries sqlx's per-database trait bounds. What really differs between the dialects is
//! asked of `Dialect`, by name.

use std::fmt::Display;

use custodian_domain::StoreResult;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{ColumnIndex, Database, Postgres, Row as _, Sqlite, Transaction};

use crate::error::db_err;

/// The SQL dialect a connection speaks: the few places where the text must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The function that finds a substring: `f(haystack, needle) > 0`.
    pub fn contains(self) -> &'static str {
        match self {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        }
    }

    /// Text ordering must be by code point on both backends, as Rust's `str` orders.
    pub fn byte_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " COLLATE \"C\"",
        }
    }

    /// The stored document's `userName`, as text, of the resource column `doc` (a
    /// column name from this crate, never input).
    pub fn user_name_of(self, doc: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({doc}, '$.userName')"),
            Dialect::Postgres => format!("{doc}::json ->> 'userName'"),
        }
    }

    /// The row lock a read-then-write takes: SQLite's single writer needs none.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// The same, leaving foreign keys that point at the row free (PostgreSQL).
    pub fn for_no_key_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR NO KEY UPDATE",
        }
    }

    /// The join from an email's index row (`scim_values v`) to its user (`r`): CROSS
    /// JOIN fixes SQLite's join order (it would otherwise scan every resource).
    pub fn email_owner_join(self) -> &'static str {
        match self {
            Dialect::Sqlite => " CROSS JOIN scim_resources r ON r.seq = v.resource_seq",
            Dialect::Postgres => " JOIN scim_resources r ON r.seq = v.resource_seq",
        }
    }

    /// A claim of rows that other instances' claims pass over (PostgreSQL); SQLite's
    /// single writer claims one batch at a time anyway.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The join from a recursive CTE's rows to the rows of `table` whose `key` equals
    /// `outer` (selecting `columns`, aliased `alias`). SQLite: `CROSS JOIN` fixes the
    /// join order (it would otherwise scan every row). PostgreSQL cannot estimate a
    /// recursive CTE's size and would hash-join against a scan of the table at each
    /// level; `LATERAL ... OFFSET 0` keeps each step an index probe.
    pub fn probe(self, table: &str, columns: &str, key: &str, outer: &str, alias: &str) -> String {
        match self {
            Dialect::Sqlite => format!(" CROSS JOIN {table} {alias} ON {alias}.{key} = {outer}"),
            Dialect::Postgres => {
                format!(" JOIN LATERAL (SELECT {columns} FROM {table} WHERE {key} = {outer} OFFSET 0) {alias} ON true")
            }
        }
    }
}

/// A bound value. Each variant binds as one SQL type on both backends, NULLs included,
/// so that PostgreSQL's strict typing and SQLite's affinities agree.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Float(Option<f64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from($v: $t) -> Arg {
                $e
            }
        })*
    };
}

arg_from! {
    i64 => |v| Arg::Int(Some(v)),
    Option<i64> => |v| Arg::Int(v),
    String => |v| Arg::Text(Some(v)),
    &String => |v| Arg::Text(Some(v.clone())),
    &str => |v| Arg::Text(Some(v.to_string())),
    Option<String> => |v| Arg::Text(v),
    &Option<String> => |v| Arg::Text(v.clone()),
    Option<&str> => |v| Arg::Text(v.map(str::to_string)),
    f64 => |v| Arg::Float(Some(v)),
    Option<f64> => |v| Arg::Float(v),
    bool => |v| Arg::Bool(v),
    Vec<u8> => |v| Arg::Bytes(v),
}

/// SQL text and its bound values, built like sqlx's `QueryBuilder`: `push` appends SQL
/// from this crate, `push_bind` appends a placeholder (`$1`, `$2`, ...) for a value
/// (written `?` for SQLite when run).
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: impl Display) -> Sql {
        Sql { text: text.to_string(), args: Vec::new() }
    }

    /// SQL with its values already numbered in the text (`$1` is the first).
    pub fn with(text: impl Display, args: impl IntoIterator<Item = Arg>) -> Sql {
        Sql { text: text.to_string(), args: args.into_iter().collect() }
    }

    pub fn push(&mut self, text: impl Display) -> &mut Sql {
        use std::fmt::Write;
        let _ = write!(self.text, "{text}");
        self
    }

    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Sql {
        self.args.push(value.into());
        let n = self.args.len();
        self.push(format_args!("${n}"))
    }

    /// A list whose items `sep` separates.
    pub fn separated<'s>(&'s mut self, sep: &'static str) -> Separated<'s> {
        Separated { sql: self, sep, first: true }
    }

    /// `VALUES (..), (..)`: `row` pushes one item's values through its `Separated`.
    pub fn push_values<I, F>(&mut self, items: I, mut row: F) -> &mut Sql
    where
        I: IntoIterator,
        F: FnMut(Separated<'_>, I::Item),
    {
        self.push("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            row(self.separated(", "), item);
            self.push(")");
        }
        self
    }

    /// The SQL text, placeholders and all (for checks that no input reached it).
    pub fn into_sql(self) -> String {
        self.text
    }
}

/// Items of a list in `Sql`, with a separator pushed before every item but the first.
pub struct Separated<'s> {
    sql: &'s mut Sql,
    sep: &'static str,
    first: bool,
}

impl Separated<'_> {
    fn next(&mut self) {
        if !self.first {
            self.sql.push(self.sep);
        }
        self.first = false;
    }

    pub fn push(&mut self, text: impl Display) -> &mut Self {
        self.next();
        self.sql.push(text);
        self
    }

    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.next();
        self.sql.push_bind(value);
        self
    }

    pub fn push_unseparated(&mut self, text: impl Display) -> &mut Self {
        self.sql.push(text);
        self
    }

    pub fn push_bind_unseparated(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.sql.push_bind(value);
        self
    }
}

/// A column by name or position, on either backend's rows.
pub trait Col: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Copy {}
impl<C: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Copy> Col for C {}

/// A row from either backend, read through typed getters with the store's error.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

macro_rules! getters {
    ($($name:ident -> $t:ty),* $(,)?) => {
        $(pub fn $name(&self, column: impl Col) -> StoreResult<$t> {
            match self {
                Row::Sqlite(r) => r.try_get(column),
                Row::Postgres(r) => r.try_get(column),
            }
            .map_err(db_err)
        })*
    };
}

impl Row {
    getters! {
        text -> String,
        opt_text -> Option<String>,
        int -> i64,
        opt_int -> Option<i64>,
        float -> f64,
        bytes -> Vec<u8>,
        boolean -> bool,
    }
}

/// A connection of one backend: a transaction, or a pooled connection for reads.
pub enum Handle<DB: Database> {
    Tx(Transaction<'static, DB>),
    Pooled(PoolConnection<DB>),
}

impl<DB: Database> Handle<DB> {
    fn raw(&mut self) -> &mut DB::Connection {
        match self {
            Handle::Tx(tx) => tx,
            Handle::Pooled(c) => c,
        }
    }
}

/// Where store logic runs its SQL, on either backend. On SQLite, the savepoint steps not
/// yet sent ride along with the next query (see [`Conn::savepoint`]).
pub enum Conn {
    Sqlite(Handle<Sqlite>, Vec<SavepointStep>),
    Postgres(Handle<Postgres>),
}

/// A step of the one savepoint a transaction nests its parts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointStep {
    Open,
    Release,
    RollBack,
}

impl SavepointStep {
    fn statement(self) -> &'static str {
        match self {
            SavepointStep::Open => "SAVEPOINT part",
            SavepointStep::Release => "RELEASE part",
            SavepointStep::RollBack => "ROLLBACK TO part",
        }
    }
}

/// The statements of `steps`, each ended by `;`, to go before a query in one text.
fn step_text(steps: &[SavepointStep]) -> String {
    steps.iter().map(|s| format!("{}; ", s.statement())).collect()
}

/// SQL for SQLite, with the arguments in the order it reads them: every `$N` becomes a
/// plain `?` bound to argument N (again where N repeats). SQLite looks every `$name` up
/// in a list of the names seen so far, which makes a statement of 10,000 values (a
/// batch of hosts) quadratic; `?` is numbered directly, as sqlx's own `QueryBuilder`
/// writes it. Quoted text (`'$.userName'`) is left alone.
fn sqlite_text(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::new();
    let mut quoted = false;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            let mut n = 0usize;
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                n = n * 10 + (d as usize - '0' as usize);
                chars.next();
            }
            out.push('?');
            order.push(n);
        } else {
            out.push(c);
        }
    }
    (out, order)
}

/// Binds the arguments an SQLite text reads, in its order.
fn sqlite_query<'q>(text: &'q str, order: &[usize], args: &'q [Arg]) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut q = sqlx::query::<Sqlite>(text);
    for a in order.iter().filter_map(|n| n.checked_sub(1)).map(|i| args.get(i)) {
        q = match a {
            Some(a) => bind_one!(q, a),
            // A placeholder with no argument: NULL, as SQLite itself would have it.
            None => q.bind(None::<i64>),
        };
    }
    q
}

/// Binds one argument to a query of either backend.
macro_rules! bind_one {
    ($q:expr, $a:expr) => {
        match $a {
            Arg::Int(v) => $q.bind(*v),
            Arg::Text(v) => $q.bind(v.as_deref()),
            Arg::Float(v) => $q.bind(*v),
            Arg::Bool(v) => $q.bind(*v),
            Arg::Bytes(v) => $q.bind(v.as_slice()),
        }
    };
}
use bind_one;

/// A PostgreSQL query of `sql`, which reads `$N` itself.
fn pg_query(sql: &Sql) -> Query<'_, Postgres, PgArguments> {
    let mut q = sqlx::query::<Postgres>(sql.text.as_str());
    for a in &sql.args {
        q = bind_one!(q, a);
    }
    q
}

impl Conn {
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(..) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a statement; the rows it changed. The raw error, for callers that tell a
    /// unique violation from other failures.
    pub async fn try_execute(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Conn::Sqlite(h, steps) => {
                // Sent alone first: SQLite reports a statement's changes as those of the
                // last one that changed rows, so a savepoint step before it would count
                // the previous write's.
                if !steps.is_empty() {
                    let text = step_text(&std::mem::take(steps));
                    sqlx::query::<Sqlite>(&text).execute(h.raw()).await?;
                }
                let (text, order) = sqlite_text(&sql.text);
                sqlite_query(&text, &order, &sql.args).execute(h.raw()).await?.rows_affected()
            }
            Conn::Postgres(h) => pg_query(sql).execute(h.raw()).await?.rows_affected(),
        })
    }

    pub async fn try_fetch_all(&mut self, sql: &Sql) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Conn::Sqlite(h, steps) => {
                let (text, order) = sqlite_text_after(steps, &sql.text);
                sqlite_query(&text, &order, &sql.args).fetch_all(h.raw()).await?.into_iter().map(Row::Sqlite).collect()
            }
            Conn::Postgres(h) => pg_query(sql).fetch_all(h.raw()).await?.into_iter().map(Row::Postgres).collect(),
        })
    }

    pub async fn try_fetch_optional(&mut self, sql: &Sql) -> Result<Option<Row>, sqlx::Error> {
        Ok(match self {
            Conn::Sqlite(h, steps) => {
                let (text, order) = sqlite_text_after(steps, &sql.text);
                sqlite_query(&text, &order, &sql.args).fetch_optional(h.raw()).await?.map(Row::Sqlite)
            }
            Conn::Postgres(h) => pg_query(sql).fetch_optional(h.raw()).await?.map(Row::Postgres),
        })
    }

    pub async fn execute(&mut self, sql: &Sql) -> StoreResult<u64> {
        self.try_execute(sql).await.map_err(db_err)
    }

    pub async fn fetch_all(&mut self, sql: &Sql) -> StoreResult<Vec<Row>> {
        self.try_fetch_all(sql).await.map_err(db_err)
    }

    pub async fn fetch_optional(&mut self, sql: &Sql) -> StoreResult<Option<Row>> {
        self.try_fetch_optional(sql).await.map_err(db_err)
    }

    /// The one row a statement answers; none is a database error.
    pub async fn fetch_one(&mut self, sql: &Sql) -> StoreResult<Row> {
        self.fetch_optional(sql).await?.ok_or_else(|| db_err(sqlx::Error::RowNotFound))
    }

    /// The integer in the first column of every row.
    pub async fn ints(&mut self, sql: &Sql) -> StoreResult<Vec<i64>> {
        self.fetch_all(sql).await?.iter().map(|r| r.int(0)).collect()
    }

    /// The integer in the first column of the one row.
    pub async fn int(&mut self, sql: &Sql) -> StoreResult<i64> {
        self.fetch_one(sql).await?.int(0)
    }

    /// Ends a transaction with its changes kept; nothing to do for a plain connection.
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Conn::Sqlite(Handle::Tx(mut tx), mut steps) => {
                // COMMIT releases every savepoint itself; a roll-back still to be sent
                // must go first.
                while steps.last() == Some(&SavepointStep::Release) {
                    steps.pop();
                }
                if !steps.is_empty() {
                    let text = step_text(&steps);
                    sqlx::query::<Sqlite>(&text).execute(&mut *tx).await.map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)
            }
            Conn::Postgres(Handle::Tx(tx)) => tx.commit().await.map_err(db_err),
            _ => Ok(()),
        }
    }

    /// Holds these identities for the rest of the transaction, so that the mapping rules
    /// of two concurrent writers see each other (PostgreSQL's advisory locks; SQLite's
    /// single writer already runs them one after the other).
    pub async fn lock_identities(&mut self, identities: &[String]) -> StoreResult<()> {
        match self {
            Conn::Sqlite(..) => Ok(()),
            Conn::Postgres(h) => crate::postgres::locks::lock_identity_keys(h.raw(), identities).await,
        }
    }

    /// Takes a step of the transaction's savepoint: opens it, releases it, or rolls back
    /// to it. On SQLite the step is sent with the next query, in the same text: each
    /// round trip to SQLite's worker thread costs more than the statement, and the group
    /// commit takes two steps for every write it carries.
    pub async fn savepoint(&mut self, step: SavepointStep) -> StoreResult<()> {
        match self {
            Conn::Sqlite(_, steps) => {
                steps.push(step);
                Ok(())
            }
            Conn::Postgres(h) => {
                sqlx::query::<Postgres>(step.statement()).execute(h.raw()).await.map(drop).map_err(db_err)
            }
        }
    }
}

/// [`sqlite_text`] of `text` after the savepoint steps still to be sent, which it takes.
fn sqlite_text_after(steps: &mut Vec<SavepointStep>, text: &str) -> (String, Vec<usize>) {
    if steps.is_empty() {
        return sqlite_text(text);
    }
    sqlite_text(&format!("{}{text}", step_text(&std::mem::take(steps))))
}

/// The pools a store opens connections from: what each backend's write, read and
/// snapshot are (SQLite: one writer connection, `BEGIN IMMEDIATE`, readers beside it;
/// PostgreSQL: one pool, READ COMMITTED writes and REPEATABLE READ snapshots, each
/// begun by `postgres::begin`, which a dropped request cannot leave half-open).
#[derive(Clone)]
pub enum Db {
    Sqlite { read: sqlx::SqlitePool, write: sqlx::SqlitePool },
    Postgres(sqlx::PgPool),
}

impl Db {
    /// A write transaction.
    pub async fn write(&self) -> StoreResult<Conn> {
        Ok(match self {
            Db::Sqlite { write, .. } => {
                Conn::Sqlite(Handle::Tx(write.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?), Vec::new())
            }
            Db::Postgres(pool) => {
                Conn::Postgres(Handle::Tx(crate::postgres::tx::begin(pool, None).await.map_err(db_err)?))
            }
        })
    }

    /// A connection for reads that need no common snapshot.
    pub async fn read(&self) -> StoreResult<Conn> {
        Ok(match self {
            Db::Sqlite { read, .. } => Conn::Sqlite(Handle::Pooled(read.acquire().await.map_err(db_err)?), Vec::new()),
            Db::Postgres(pool) => Conn::Postgres(Handle::Pooled(pool.acquire().await.map_err(db_err)?)),
        })
    }

    /// A read-only transaction: several reads that see one state of the database.
    pub async fn snapshot(&self) -> StoreResult<Conn> {
        Ok(match self {
            Db::Sqlite { read, .. } => Conn::Sqlite(Handle::Tx(read.begin().await.map_err(db_err)?), Vec::new()),
            Db::Postgres(pool) => Conn::Postgres(Handle::Tx(
                crate::postgres::tx::begin(pool, Some(crate::postgres::tx::READ_ONLY_SNAPSHOT))
                    .await
                    .map_err(db_err)?,
            )),
        })
    }
}

impl Db {
    /// One statement in a write transaction of its own; the rows it changed.
    pub async fn write_one(&self, sql: Sql) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let n = tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(n)
    }
}

impl Db {
    pub fn pool_stats(&self) -> custodian_domain::PoolStats {
        match self {
            // The writer and the readers together.
            Db::Sqlite { read, write } => custodian_domain::PoolStats {
                open: read.size() + write.size(),
                idle: (read.num_idle() + write.num_idle()) as u32,
                max: read.options().get_max_connections() + write.options().get_max_connections(),
            },
            Db::Postgres(pool) => custodian_domain::PoolStats {
                open: pool.size(),
                idle: pool.num_idle() as u32,
                max: pool.options().get_max_connections(),
            },
        }
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_are_numbered_and_quoted_text_is_kept() {
        let (text, order) =
            sqlite_text("SELECT json_extract(doc, '$.userName') FROM t WHERE a = $2 AND b IN ($1, $12, $2)");
        assert_eq!(text, "SELECT json_extract(doc, '$.userName') FROM t WHERE a = ? AND b IN (?, ?, ?)");
        assert_eq!(order, [2, 1, 12, 2]);
    }
}
