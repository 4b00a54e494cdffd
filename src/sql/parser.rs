//! Reading one statement's tokens for the table it writes and the keys it names.

use sea_orm::Value;

use super::statement::{Classified, Verb, Write};
use super::tokenize::Tok;

/// Reads one statement's tokens.
pub(super) struct Parser<'a> {
    pub(super) toks: &'a [Tok],
    pub(super) pos: usize,
    pub(super) values: &'a [Value],
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

    pub(super) fn statement(&mut self) -> Classified {
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
