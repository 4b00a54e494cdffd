//! Splitting a statement into tokens: words, quoted identifiers, literals, bind parameters
//! (numbered in order, whatever the backend's placeholder), punctuation and `;`.

use sea_orm::DbBackend;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) fn tokenize(sql: &str, backend: DbBackend) -> Vec<Tok> {
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
