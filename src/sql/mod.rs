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
//!
//! - `tokenize`: tokens; `parser`: one statement's table and keys; `statement`: what they
//!   tell.

mod parser;
mod statement;
mod tokenize;

use sea_orm::{DbBackend, Value};

use parser::Parser;
pub(crate) use statement::{Classified, Verb, Write};
use tokenize::{Tok, tokenize};

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
