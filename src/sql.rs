//! Reading a statement for what it writes: which table, and, where the statement says so
//! plainly, which primary keys (DESIGN G4).
//!
//! This is not an SQL parser. It recognises the shapes SeaORM (sea-query) generates and the
//! common hand-written ones: `INSERT INTO t (cols) VALUES (...)`, `UPDATE t SET ... WHERE
//! cond`, `DELETE FROM t WHERE cond`, where `cond` is made of `col = value`, `col IN (...)`,
//! `AND`, `OR` and parentheses. Anything else that may write is reported without keys, and a
//! statement it cannot attribute to a table at all is reported as [`Classified::Everything`].
//! Callers fall back to coarser invalidation in both cases, so a miss here costs hits, never
//! correctness.

use sea_orm::{DbBackend, Value};

/// What a statement does to cached tables.
#[derive(Debug, PartialEq)]
pub(crate) enum Classified {
    /// Reads, or writes nothing a cache holds (transaction control, `SET`, `CREATE`).
    Read,
    /// Writes one table.
    Write(Write),
    /// May write, but to which table cannot be told.
    Everything,
}

/// A write to one table.
#[derive(Debug, PartialEq)]
pub(crate) struct Write {
    /// Table name, unquoted, without schema.
    pub(crate) table: String,
    pub(crate) verb: Verb,
    /// The rows the statement touches, each as `column = value` pairs (the `WHERE` clause's
    /// equalities, or an inserted row's values); `None` when they cannot be told.
    pub(crate) rows: Option<Vec<Vec<(String, Value)>>>,
    /// Columns an `UPDATE` sets (so a caller can tell whether it moves a primary key).
    pub(crate) set_columns: Vec<String>,
}

/// The kind of write.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Verb {
    /// `INSERT`; `upsert` when it may also update existing rows.
    Insert { upsert: bool },
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `TRUNCATE`, `ALTER`, `DROP`, `RENAME`: every row may be gone or changed.
    Schema,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word, upper-cased for keyword comparison; `raw` keeps the original.
    Word { upper: String, raw: String },
    /// A quoted identifier.
    Ident(String),
    /// A string literal.
    Str(String),
    /// A numeric literal.
    Num(String),
    /// A bind parameter: its index into the statement's values.
    Param(usize),
    /// Punctuation.
    Sym(char),
    /// `;` between statements.
    End,
}

fn tokenize(sql: &str, backend: DbBackend) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut next_param = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' | '"' | '`' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() {
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            text.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if chars[i] == '\\' && c == '\'' && backend == DbBackend::MySql {
                        i += 1;
                    }
                    if let Some(&ch) = chars.get(i) {
                        text.push(ch);
                    }
                    i += 1;
                }
                i += 1;
                toks.push(if c == '\'' {
                    Tok::Str(text)
                } else {
                    Tok::Ident(text)
                });
            }
            '?' => {
                toks.push(Tok::Param(next_param));
                next_param += 1;
                i += 1;
            }
            '$' if chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let n: usize = chars[start..i]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0);
                toks.push(Tok::Param(n.saturating_sub(1)));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                toks.push(Tok::Word {
                    upper: raw.to_ascii_uppercase(),
                    raw,
                });
            }
            ';' => {
                toks.push(Tok::End);
                i += 1;
            }
            c => {
                toks.push(Tok::Sym(c));
                i += 1;
            }
        }
    }
    toks
}

/// Classifies every statement in `sql` (several when separated by `;`). `values` are the
/// statement's bind parameters.
pub(crate) fn classify(sql: &str, values: &[Value], backend: DbBackend) -> Vec<Classified> {
    tokenize(sql, backend)
        .split(|t| *t == Tok::End)
        .filter(|toks| !toks.is_empty())
        .map(|toks| {
            Parser {
                toks,
                pos: 0,
                values,
            }
            .statement()
        })
        .collect()
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    values: &'a [Value],
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn bump(&mut self) -> Option<&Tok> {
        let tok = self.toks.get(self.pos);
        self.pos += 1;
        tok
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word { upper, .. }) if upper == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.pos += 1;
        }
        found
    }

    fn eat_sym(&mut self, sym: char) -> bool {
        let found = self.peek() == Some(&Tok::Sym(sym));
        if found {
            self.pos += 1;
        }
        found
    }

    fn any_word(&self, words: &[&str]) -> bool {
        self.toks[self.pos..]
            .iter()
            .any(|t| matches!(t, Tok::Word { upper, .. } if words.contains(&upper.as_str())))
    }

    /// An identifier (quoted or bare), `schema.name` reduced to `name`.
    fn name(&mut self) -> Option<String> {
        let mut name = match self.bump()? {
            Tok::Ident(s) => s.clone(),
            Tok::Word { raw, .. } => raw.clone(),
            _ => return None,
        };
        while self.eat_sym('.') {
            name = match self.bump()? {
                Tok::Ident(s) => s.clone(),
                Tok::Word { raw, .. } => raw.clone(),
                _ => return None,
            };
        }
        Some(name)
    }

    fn statement(&mut self) -> Classified {
        let Some(Tok::Word { upper, .. }) = self.peek() else {
            return Classified::Everything;
        };
        match upper.as_str() {
            "SELECT" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "SET" | "BEGIN" | "START" | "COMMIT"
            | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "CREATE" | "PRAGMA" | "VALUES" => {
                if self.any_word(&["INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE"])
                    && !matches!(
                        upper.as_str(),
                        "CREATE" | "SAVEPOINT" | "RELEASE" | "ROLLBACK"
                    )
                    && !self.is_select_for_update()
                {
                    Classified::Everything
                } else {
                    Classified::Read
                }
            }
            "WITH" => {
                if self.any_word(&["INSERT", "UPDATE", "DELETE", "MERGE"]) {
                    Classified::Everything
                } else {
                    Classified::Read
                }
            }
            "INSERT" | "REPLACE" => self.insert(),
            "UPDATE" => self.update(),
            "DELETE" => self.delete(),
            "TRUNCATE" | "ALTER" | "DROP" | "RENAME" => self.schema(),
            _ => Classified::Everything,
        }
    }

    /// `SELECT ... FOR UPDATE` names UPDATE but writes nothing.
    fn is_select_for_update(&self) -> bool {
        let words: Vec<&str> = self.toks[self.pos..]
            .iter()
            .filter_map(|t| match t {
                Tok::Word { upper, .. } => Some(upper.as_str()),
                _ => None,
            })
            .collect();
        words.first() == Some(&"SELECT")
            && words
                .iter()
                .filter(|w| ["INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE"].contains(w))
                .count()
                == words.windows(2).filter(|w| w == &["FOR", "UPDATE"]).count()
    }

    fn schema(&mut self) -> Classified {
        // TRUNCATE [TABLE] t | ALTER TABLE t | DROP TABLE [IF EXISTS] t | RENAME TABLE t TO u
        let verb = self.bump().cloned();
        let is_table = self.eat_word("TABLE");
        if !is_table && !matches!(verb, Some(Tok::Word { ref upper, .. }) if upper == "TRUNCATE") {
            // ALTER INDEX, DROP INDEX, DROP VIEW...: no table rows change.
            return Classified::Read;
        }
        if self.eat_word("IF") {
            self.eat_word("NOT");
            self.eat_word("EXISTS");
        }
        self.eat_word("ONLY");
        match self.name() {
            Some(table) if self.peek().is_none_or(|t| *t != Tok::Sym(',')) => {
                Classified::Write(Write {
                    table,
                    verb: Verb::Schema,
                    rows: None,
                    set_columns: Vec::new(),
                })
            }
            _ => Classified::Everything,
        }
    }

    fn insert(&mut self) -> Classified {
        let replace = self.is_word("REPLACE");
        self.pos += 1;
        while self.eat_word("IGNORE")
            || self.eat_word("LOW_PRIORITY")
            || self.eat_word("DELAYED")
            || self.eat_word("HIGH_PRIORITY")
            || (self.eat_word("OR") && self.bump().is_some())
        {}
        self.eat_word("INTO");
        let Some(table) = self.name() else {
            return Classified::Everything;
        };
        let upsert = replace || self.any_word(&["CONFLICT", "DUPLICATE"]);
        let rows = self.insert_rows();
        Classified::Write(Write {
            table,
            verb: Verb::Insert { upsert },
            rows,
            set_columns: Vec::new(),
        })
    }

    fn insert_rows(&mut self) -> Option<Vec<Vec<(String, Value)>>> {
        if !self.eat_sym('(') {
            return None;
        }
        let mut columns = Vec::new();
        loop {
            columns.push(self.name()?);
            if self.eat_sym(')') {
                break;
            }
            if !self.eat_sym(',') {
                return None;
            }
        }
        if !self.eat_word("VALUES") {
            return None;
        }
        let mut rows = Vec::new();
        loop {
            if !self.eat_sym('(') {
                return None;
            }
            let mut row = Vec::new();
            for (n, column) in columns.iter().enumerate() {
                if n > 0 && !self.eat_sym(',') {
                    return None;
                }
                // A value we cannot read (DEFAULT, an expression) leaves that column unknown.
                match self.value() {
                    Some(value) => row.push((column.clone(), value)),
                    None => self.skip_expression(),
                }
            }
            if !self.eat_sym(')') {
                return None;
            }
            rows.push(row);
            if !self.eat_sym(',') {
                break;
            }
        }
        Some(rows)
    }

    /// Skips to the next `,`, `)`, `WHERE` or `RETURNING` at this nesting depth.
    fn skip_expression(&mut self) {
        let mut depth = 0usize;
        while let Some(tok) = self.peek() {
            match tok {
                Tok::Sym('(') => depth += 1,
                Tok::Sym(')') if depth == 0 => return,
                Tok::Sym(')') => depth -= 1,
                Tok::Sym(',') if depth == 0 => return,
                Tok::Word { upper, .. }
                    if depth == 0 && (upper == "WHERE" || upper == "RETURNING") =>
                {
                    return;
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// A bind parameter or a plain literal.
    fn value(&mut self) -> Option<Value> {
        let value = match self.peek()? {
            Tok::Param(i) => self.values.get(*i)?.clone(),
            Tok::Num(n) => Value::BigInt(Some(n.parse().ok()?)),
            Tok::Str(s) => Value::String(Some(s.clone())),
            _ => return None,
        };
        self.pos += 1;
        Some(value)
    }

    fn update(&mut self) -> Classified {
        self.pos += 1;
        while self.eat_word("LOW_PRIORITY") || self.eat_word("IGNORE") || self.eat_word("ONLY") {}
        let Some(table) = self.name() else {
            return Classified::Everything;
        };
        if !self.eat_word("SET") {
            // A multi-table UPDATE (joins) or an alias: give up on keys, keep the table.
            return self.unknown_rows(table, Verb::Update);
        }
        let mut set_columns = Vec::new();
        loop {
            let Some(column) = self.name() else {
                return self.unknown_rows(table, Verb::Update);
            };
            set_columns.push(column);
            if !self.eat_sym('=') {
                return self.unknown_rows(table, Verb::Update);
            }
            self.skip_expression();
            if !self.eat_sym(',') {
                break;
            }
        }
        let rows = self.where_rows();
        Classified::Write(Write {
            table,
            verb: Verb::Update,
            rows,
            set_columns,
        })
    }

    fn delete(&mut self) -> Classified {
        self.pos += 1;
        while self.eat_word("LOW_PRIORITY") || self.eat_word("QUICK") || self.eat_word("IGNORE") {}
        if !self.eat_word("FROM") {
            return Classified::Everything;
        }
        let Some(table) = self.name() else {
            return Classified::Everything;
        };
        let rows = self.where_rows();
        Classified::Write(Write {
            table,
            verb: Verb::Delete,
            rows,
            set_columns: Vec::new(),
        })
    }

    fn unknown_rows(&self, table: String, verb: Verb) -> Classified {
        Classified::Write(Write {
            table,
            verb,
            rows: None,
            set_columns: Vec::new(),
        })
    }

    /// The rows a `WHERE` clause pins down, in disjunctive normal form; `None` when the
    /// clause is absent (every row) or has a shape we do not read.
    fn where_rows(&mut self) -> Option<Vec<Vec<(String, Value)>>> {
        if !self.eat_word("WHERE") {
            return None;
        }
        let rows = self.disjunction()?;
        let done = self.peek().is_none()
            || ["RETURNING", "ORDER", "LIMIT"]
                .iter()
                .any(|w| self.is_word(w));
        done.then_some(rows)
    }

    fn disjunction(&mut self) -> Option<Vec<Vec<(String, Value)>>> {
        let mut rows = self.conjunction()?;
        while self.eat_word("OR") {
            rows.extend(self.conjunction()?);
            if rows.len() > MAX_ROWS {
                return None;
            }
        }
        Some(rows)
    }

    fn conjunction(&mut self) -> Option<Vec<Vec<(String, Value)>>> {
        let mut rows = self.term()?;
        while self.eat_word("AND") {
            let next = self.term()?;
            let mut product = Vec::with_capacity(rows.len() * next.len());
            for row in &rows {
                for extra in &next {
                    let mut combined = row.clone();
                    combined.extend(extra.iter().cloned());
                    product.push(combined);
                }
            }
            if product.len() > MAX_ROWS {
                return None;
            }
            rows = product;
        }
        Some(rows)
    }

    fn term(&mut self) -> Option<Vec<Vec<(String, Value)>>> {
        if self.eat_sym('(') {
            let rows = self.disjunction()?;
            return self.eat_sym(')').then_some(rows);
        }
        let column = self.name()?;
        if self.eat_sym('=') {
            let value = self.value()?;
            return Some(vec![vec![(column, value)]]);
        }
        if self.eat_word("IN") && self.eat_sym('(') {
            let mut rows = Vec::new();
            loop {
                rows.push(vec![(column.clone(), self.value()?)]);
                if self.eat_sym(')') {
                    return (rows.len() <= MAX_ROWS).then_some(rows);
                }
                if !self.eat_sym(',') {
                    return None;
                }
            }
        }
        None
    }
}

/// Most rows a statement's keys are read for; past it the caller invalidates the whole table.
const MAX_ROWS: usize = 10_000;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(sql: &str, values: Vec<Value>, backend: DbBackend) -> Classified {
        let mut all = classify(sql, &values, backend);
        assert_eq!(all.len(), 1, "{sql}");
        all.remove(0)
    }

    fn keys(c: &Classified) -> Option<Vec<Vec<(String, Value)>>> {
        match c {
            Classified::Write(w) => w.rows.clone(),
            _ => None,
        }
    }

    fn big(n: i64) -> Value {
        Value::BigInt(Some(n))
    }

    #[test]
    fn sea_query_update_by_key() {
        let c = one(
            r#"UPDATE "users" SET "name" = $1 WHERE "users"."id" = $2 RETURNING "id", "name""#,
            vec![Value::String(Some("x".into())), big(7)],
            DbBackend::Postgres,
        );
        assert!(matches!(&c, Classified::Write(w) if w.table == "users" && w.verb == Verb::Update));
        assert_eq!(keys(&c), Some(vec![vec![("id".into(), big(7))]]));
    }

    #[test]
    fn mysql_placeholders_count_in_order() {
        let c = one(
            "UPDATE `memberships` SET `role` = ? WHERE `memberships`.`org_id` = ? AND `memberships`.`user_id` = ?",
            vec![Value::String(Some("admin".into())), big(1), big(2)],
            DbBackend::MySql,
        );
        assert_eq!(
            keys(&c),
            Some(vec![vec![
                ("org_id".into(), big(1)),
                ("user_id".into(), big(2))
            ]])
        );
    }

    #[test]
    fn delete_in_list_and_or_of_ands() {
        let c = one(
            r#"DELETE FROM "users" WHERE "users"."id" IN (?, ?, 5)"#,
            vec![big(1), big(2)],
            DbBackend::Sqlite,
        );
        assert_eq!(
            keys(&c),
            Some(vec![
                vec![("id".into(), big(1))],
                vec![("id".into(), big(2))],
                vec![("id".into(), big(5))]
            ])
        );
        let c = one(
            r#"DELETE FROM "m" WHERE ("m"."a" = $1 AND "m"."b" = $2) OR ("m"."a" = $3 AND "m"."b" = $4)"#,
            vec![big(1), big(2), big(3), big(4)],
            DbBackend::Postgres,
        );
        assert_eq!(keys(&c).map(|k| k.len()), Some(2));
    }

    #[test]
    fn shapes_we_do_not_read_have_no_keys() {
        for sql in [
            r#"UPDATE "users" SET "name" = 'x'"#,
            r#"UPDATE "users" SET "name" = 'x' WHERE "users"."id" > 5"#,
            r#"DELETE FROM "users" WHERE lower("email") = 'a'"#,
            r#"INSERT INTO "users" ("email") SELECT "email" FROM "other""#,
        ] {
            let c = one(sql, vec![], DbBackend::Postgres);
            assert!(
                matches!(&c, Classified::Write(w) if w.table == "users"),
                "{sql}"
            );
            assert_eq!(keys(&c), None, "{sql}");
        }
    }

    #[test]
    fn inserts_give_their_rows_and_say_upsert() {
        let c = one(
            r#"INSERT INTO "profiles" ("user_id", "display_name") VALUES ($1, $2), ($3, $4) ON CONFLICT ("user_id") DO UPDATE SET "display_name" = "excluded"."display_name""#,
            vec![big(1), Value::String(None), big(2), Value::String(None)],
            DbBackend::Postgres,
        );
        let Classified::Write(w) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(w.verb, Verb::Insert { upsert: true });
        assert_eq!(w.rows.as_ref().map(Vec::len), Some(2));
        assert_eq!(w.rows.as_ref().unwrap()[1][0], ("user_id".into(), big(2)));
    }

    #[test]
    fn reads_and_raw_statements() {
        let b = DbBackend::Postgres;
        assert_eq!(
            one(r#"SELECT * FROM "users" WHERE id = 1"#, vec![], b),
            Classified::Read
        );
        assert_eq!(
            one(
                r#"SELECT * FROM "users" WHERE id = 1 FOR UPDATE"#,
                vec![],
                b
            ),
            Classified::Read
        );
        assert_eq!(one("CALL do_things()", vec![], b), Classified::Everything);
        assert!(matches!(
            one("TRUNCATE TABLE users", vec![], b),
            Classified::Write(Write {
                verb: Verb::Schema,
                ..
            })
        ));
        let all = classify(
            "UPDATE users SET name = 'a' WHERE id = 3; DELETE FROM posts WHERE id = 4 -- done",
            &[],
            b,
        );
        assert_eq!(all.len(), 2);
        assert_eq!(keys(&all[0]), Some(vec![vec![("id".into(), big(3))]]));
        assert!(matches!(&all[1], Classified::Write(w) if w.table == "posts"));
    }

    #[test]
    fn an_update_that_sets_its_key_is_marked() {
        let c = one(
            "UPDATE users SET id = 9 WHERE id = 3",
            vec![],
            DbBackend::Postgres,
        );
        let Classified::Write(w) = c else { panic!() };
        assert_eq!(w.set_columns, vec!["id".to_owned()]);
    }
}
