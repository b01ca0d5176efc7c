//! Commands as the demo prints them: the words a user would type into a
//! POSIX shell, quoted only where the shell needs it, so every printed
//! command can be pasted as is.

/// `program` and `args` as one shell command line.
pub(crate) fn line<S: AsRef<str>>(program: &str, args: &[S]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(AsRef::as_ref))
        .map(word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word, single-quoted when it holds anything a shell would interpret.
pub(crate) fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare_and_the_rest_is_single_quoted() {
        assert_eq!(
            line(
                "weft",
                &[
                    "install",
                    "--registry",
                    "localhost/weft",
                    "--image-tag",
                    "dev"
                ]
            ),
            "weft install --registry localhost/weft --image-tag dev"
        );
        assert_eq!(
            line(
                "kubectl",
                &[
                    "get",
                    "configmap",
                    "-o",
                    r#"go-template={{index .data "ca-bundle.crt"}}"#
                ]
            ),
            r#"kubectl get configmap -o 'go-template={{index .data "ca-bundle.crt"}}'"#
        );
        assert_eq!(word("/a path/x"), "'/a path/x'");
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(word(""), "''");
    }
}
