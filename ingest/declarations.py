"""C declarations in a <pre>, one to a line, before unstructured reads them.

A C library's reference gives each function's prototype in a <pre>, wrapped one parameter to a line as the
header file writes it (gtk-doc's references, PostgreSQL's libpq chapter, SQLite's C interface pages):

    int
    gnutls_aead_cipher_encrypt (gnutls_aead_cipher_hd_t handle,
                                const void *nonce,
                                size_t tag_size,
                                ...);

unstructured keeps a <pre>'s lines, and every line was read as a sentence of its own: "size_t tag_size," was
quoted as an answer to "What tag_size should I pass to gnutls_aead_cipher_encrypt()?", and "int" stood alone.
`join_declarations` writes each declaration of such a <pre> on one line, its whitespace collapsed (a comment
between its parameters kept in place): "int gnutls_aead_cipher_encrypt (gnutls_aead_cipher_hd_t handle, const
void *nonce, size_t tag_size, ...);".

Only a <pre> that holds nothing but declarations is touched (a return type, a name, a parenthesised parameter
list, a ";"), and only where one of them spans lines: an example program, a macro or a struct stays as it is.
"""

from __future__ import annotations

import re

# one prototype: return type and qualifiers, the name, the parameters (a function pointer's parentheses, a
# comment's words allowed), the closing ");"
DECLARATION_RE = re.compile(r"[A-Za-z_][\w \t\n*]*?[\w*]\s*\((?:[^();{}#]|\([^();{}#]*\))*\)\s*;", re.S)
COMMENT_RE = re.compile(r"/\*.*?\*/", re.S)


def declarations(text: str) -> list[str] | None:
    """The declarations of `text`, each on one line, when it holds nothing else and one spans lines; else None."""
    body = text.strip()
    if not body or "{" in body or "#" in body:
        return None
    found, at = [], 0
    plain = COMMENT_RE.sub(lambda m: " " * len(m.group()), body)  # (a comment's parentheses are not the list's)
    for m in DECLARATION_RE.finditer(plain):
        if plain[at:m.start()].strip():
            return None
        found.append(body[m.start():m.end()])
        at = m.end()
    if not found or plain[at:].strip() or not any("\n" in d.strip() for d in found):
        return None
    return [" ".join(re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", d)).split()) for d in found]


def join_declarations(doc) -> int:
    """Write each <pre> of `doc` (an lxml.html document) that holds only C declarations with one declaration
    to a line; how many were rewritten."""
    done = 0
    for pre in list(doc.iter("pre")):
        lines = declarations(pre.text_content())
        if lines is None:
            continue
        tail = pre.tail
        pre.clear()  # (its links and spans go: the text is what a reader and the chunker see)
        pre.text, pre.tail = "\n".join(lines), tail
        done += 1
    return done
