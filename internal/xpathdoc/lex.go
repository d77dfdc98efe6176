package xpathdoc

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The antchfx/xpath library accepts more than XPath 1.0 and gets a few XPath
// 1.0 rules wrong. Before an expression reaches it, this file tokenizes the
// expression (with the library's own lexical rules, and XPath 1.0 §3.7 to
// tell name tests from operator and function names) in order to
//
//   - reject what is not XPath 1.0 or cannot be evaluated safely: extension
//     functions (matches(), replace(), string-join(), ...; the regular
//     expression ones would also let clients fill the library's
//     process-wide, 65536-entry regexp cache), variables, the namespace
//     axis, prefixed function names; and report syntax errors with their
//     byte offset;
//   - bind unprefixed name tests to "no namespace" (XPath 1.0 §2.3): the
//     library compares the prefix instead, so "state" would match an element
//     <state xmlns="urn:x">; such tests are rewritten to use a reserved
//     prefix bound to the empty namespace URI;
//   - make "p:*" work: the library never matches it, so it becomes
//     "*[namespace-uri()='URI']";
//   - make processing-instruction() match nothing (the library matches
//     elements with it; this package does not expose processing
//     instructions).

type tokKind uint8

const (
	tokName       tokKind = iota // NCName or QName or prefix:*; see prefix/local
	tokAxis                      // AxisName '::'
	tokStar                      // '*'
	tokLiteral                   // '...' or "..."
	tokNumber                    // 12 or 1.5 or .5
	tokDollar                    // '$'
	tokLParen                    // '('
	tokRParen                    // ')'
	tokLBracket                  // '['
	tokRBracket                  // ']'
	tokDot                       // '.'
	tokDotDot                    // '..'
	tokAt                        // '@'
	tokComma                     // ','
	tokSlash                     // '/'
	tokSlashSlash                // '//'
	tokOp                        // | + - = != < <= > >=
)

type token struct {
	kind          tokKind
	start, end    int    // byte offsets in the expression
	prefix, local string // tokName, tokAxis; local "*" for prefix:*
	paren         bool   // tokName: next non-space character is '('
}

// syntaxError is a lexical or grammatical problem at a byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("syntax error at offset %d: %s", e.off, e.msg)
}

// isNameChar mirrors antchfx/xpath's scanner: every non-space, non-ASCII
// rune is treated as a name character (the library accepts a superset of
// the XML name characters there and rejects the rest, so the expression
// fails to compile either way).
func isNameChar(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || r == '-' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
	}
	return !unicode.IsSpace(r)
}

func isDigit(r rune) bool { return unicode.IsDigit(r) }

// tokenize splits expr into tokens following the lexical rules of
// antchfx/xpath (which are XPath 1.0's, with its name-character set).
func tokenize(expr string) ([]token, error) {
	var toks []token
	pos := 0
	peek := func(at int) (rune, int) {
		if at >= len(expr) {
			return 0, 0
		}
		r, n := rune(expr[at]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(expr[at:])
		}
		return r, n
	}
	skipSpace := func(at int) int {
		for {
			r, n := peek(at)
			if n == 0 || !unicode.IsSpace(r) {
				return at
			}
			at += n
		}
	}
	scanName := func(at int) int {
		for {
			r, n := peek(at)
			if n == 0 || !isNameChar(r) {
				return at
			}
			at += n
		}
	}
	scanDigits := func(at int) int {
		for {
			r, n := peek(at)
			if n == 0 || !isDigit(r) {
				return at
			}
			at += n
		}
	}
	for {
		pos = skipSpace(pos)
		r, n := peek(pos)
		if n == 0 {
			return toks, nil
		}
		if r == utf8.RuneError && n == 1 {
			return nil, &syntaxError{pos, "invalid UTF-8"}
		}
		t := token{start: pos}
		switch {
		case r == '(':
			t.kind, pos = tokLParen, pos+1
		case r == ')':
			t.kind, pos = tokRParen, pos+1
		case r == '[':
			t.kind, pos = tokLBracket, pos+1
		case r == ']':
			t.kind, pos = tokRBracket, pos+1
		case r == '@':
			t.kind, pos = tokAt, pos+1
		case r == ',':
			t.kind, pos = tokComma, pos+1
		case r == '*':
			t.kind, pos = tokStar, pos+1
		case r == '$':
			t.kind, pos = tokDollar, pos+1
		case r == '|' || r == '+' || r == '-' || r == '=':
			t.kind, pos = tokOp, pos+1
		case r == '<' || r == '>':
			t.kind, pos = tokOp, pos+1
			if nr, _ := peek(pos); nr == '=' {
				pos++
			}
		case r == '!':
			if nr, _ := peek(pos + 1); nr != '=' {
				return nil, &syntaxError{pos, "'!' must be followed by '=' (XPath negation is not(...))"}
			}
			t.kind, pos = tokOp, pos+2
		case r == '/':
			t.kind, pos = tokSlash, pos+1
			if nr, _ := peek(pos); nr == '/' {
				t.kind, pos = tokSlashSlash, pos+1
			}
		case r == '.':
			t.kind, pos = tokDot, pos+1
			if nr, nn := peek(pos); nr == '.' {
				t.kind, pos = tokDotDot, pos+1
			} else if nn > 0 && isDigit(nr) {
				t.kind, pos = tokNumber, scanDigits(pos)
			}
		case r == '"' || r == '\'':
			end := strings.IndexRune(expr[pos+1:], r)
			if end < 0 {
				return nil, &syntaxError{pos, "unterminated string literal"}
			}
			t.kind, pos = tokLiteral, pos+1+end+1
		case isDigit(r):
			t.kind, pos = tokNumber, scanDigits(pos)
			if nr, _ := peek(pos); nr == '.' {
				pos = scanDigits(pos + 1)
			}
		case isNameChar(r):
			t.kind = tokName
			end := scanName(pos)
			t.local = expr[pos:end]
			pos = end
			if nr, _ := peek(pos); nr == ':' {
				if nr2, _ := peek(pos + 1); nr2 == ':' {
					t.kind, pos = tokAxis, pos+2
				} else {
					t.prefix = t.local
					nr3, nn3 := peek(pos + 1)
					switch {
					case nr3 == '*':
						t.local, pos = "*", pos+2
					case nn3 > 0 && isNameChar(nr3) && !isDigit(nr3) && nr3 != '-' && nr3 != '.':
						end := scanName(pos + 1)
						t.local, pos = expr[pos+1:end], end
					default:
						return nil, &syntaxError{pos, fmt.Sprintf("%q must be followed by a local name or '*'", t.prefix+":")}
					}
				}
			} else {
				after := skipSpace(pos)
				if nr, _ := peek(after); nr == ':' {
					if nr2, _ := peek(after + 1); nr2 != ':' {
						return nil, &syntaxError{after, "no space is allowed around ':' in a qualified name"}
					}
					t.kind, pos = tokAxis, after+2
				}
			}
			if t.kind == tokName {
				if nr, _ := peek(skipSpace(pos)); nr == '(' {
					t.paren = true
				}
			}
		default:
			return nil, &syntaxError{pos, fmt.Sprintf("unexpected character %q", r)}
		}
		t.end = pos
		toks = append(toks, t)
	}
}

// xpath10Functions are the XPath 1.0 core functions the library implements.
var xpath10Functions = map[string]bool{
	"last": true, "position": true, "count": true,
	"local-name": true, "namespace-uri": true, "name": true,
	"string": true, "concat": true, "starts-with": true, "contains": true,
	"substring-before": true, "substring-after": true, "substring": true,
	"string-length": true, "normalize-space": true, "translate": true,
	"boolean": true, "not": true, "true": true, "false": true,
	"number": true, "sum": true, "floor": true, "ceiling": true, "round": true,
}

var axes = map[string]bool{
	"ancestor": true, "ancestor-or-self": true, "attribute": true, "child": true,
	"descendant": true, "descendant-or-self": true, "following": true,
	"following-sibling": true, "parent": true, "preceding": true,
	"preceding-sibling": true, "self": true,
}

func isNodeType(name string) bool {
	switch name {
	case "node", "text", "comment", "processing-instruction":
		return true
	}
	return false
}

// rewrite checks the token sequence of expr and returns the expression to
// hand to the library. noNS is the reserved prefix bound to the empty
// namespace URI; ns maps the caller's prefixes to URIs. Undeclared prefixes
// are reported by newProgram.
//
// The check is a token-adjacency check, not a full parse (the library parses
// afterwards), but it catches what the library silently ignores, such as
// trailing tokens ("a b" would otherwise evaluate as "a").
func rewrite(expr string, toks []token, ns map[string]string, noNS string) (string, error) {
	var sb strings.Builder
	last := 0 // expr[last:] not yet copied to sb
	emit := func(upTo int, s string, resume int) {
		if sb.Len() == 0 {
			sb.Grow(len(expr) + 32)
		}
		sb.WriteString(expr[last:upTo])
		sb.WriteString(s)
		last = resume
	}
	text := func(t token) string { return expr[t.start:t.end] }
	// operand is true where XPath 1.0 §3.7 expects an operand: at the start
	// and after '@', '::', '(', '[', ',' or an operator. There a name is a
	// name test, function or node type and '*' is a name test; elsewhere a
	// name is an operator name and '*' multiplies.
	operand := true
	loneSlash := false // previous token is a '/' that may be the whole path "/"
	callParen := false // previous token is the '(' of a function call or node test
	depth := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		wasLoneSlash, wasCallParen := loneSlash, callParen
		loneSlash, callParen = false, false
		if operand && wasLoneSlash {
			switch t.kind {
			case tokOp, tokRParen, tokRBracket, tokComma:
				operand = false // "/" was a complete location path
			}
		}
		if operand {
			switch t.kind {
			case tokName:
				if !t.paren {
					operand = false // a name test
					switch {
					case t.prefix == "":
						emit(t.start, noNS+":", t.start)
					case t.local == "*":
						uri := ns[t.prefix] // undeclared prefixes are reported by newProgram
						emit(t.start, "*[namespace-uri()="+xpathLiteral(uri)+"]", t.end)
					}
					continue
				}
				if t.prefix == "" && isNodeType(t.local) {
					if t.local == "processing-instruction" {
						// processing-instruction ( Literal? ) -> node()[false()]
						j := i + 1 // '('
						if j+1 < len(toks) && toks[j+1].kind == tokLiteral {
							j++
						}
						if j+1 >= len(toks) || toks[j+1].kind != tokRParen {
							return "", &syntaxError{t.start, "processing-instruction() takes at most one string literal"}
						}
						emit(t.start, "node()[false()]", toks[j+1].end)
						i = j + 1
						operand = false
					}
					continue
				}
				if t.prefix != "" {
					return "", &syntaxError{t.start, fmt.Sprintf("extension function %s() is not supported", text(t))}
				}
				if !xpath10Functions[t.local] {
					if t.local == "id" || t.local == "lang" {
						return "", &syntaxError{t.start, fmt.Sprintf("function %s() is not supported", t.local)}
					}
					return "", &syntaxError{t.start, fmt.Sprintf("unknown function %s() (only the XPath 1.0 core function library is available)", t.local)}
				}
			case tokAxis:
				if t.local == "namespace" {
					return "", &syntaxError{t.start, "the namespace axis is not supported"}
				}
				if !axes[t.local] {
					return "", &syntaxError{t.start, fmt.Sprintf("unknown axis %q", t.local)}
				}
			case tokStar, tokLiteral, tokNumber, tokDot, tokDotDot:
				operand = false
			case tokAt, tokSlashSlash:
			case tokSlash:
				loneSlash = true
			case tokLParen:
				if i > 0 && toks[i-1].kind == tokName {
					callParen = true
				} else if i > 0 && (toks[i-1].kind == tokSlash || toks[i-1].kind == tokSlashSlash) {
					return "", &syntaxError{t.start, "unexpected '(' after '/'"}
				}
				depth++
			case tokDollar:
				return "", &syntaxError{t.start, "variable references are not supported (no variables are bound)"}
			case tokOp:
				if text(t) != "-" { // unary minus is the only prefix operator
					return "", &syntaxError{t.start, fmt.Sprintf("expected an operand before %q", text(t))}
				}
			case tokRParen:
				if !wasCallParen {
					return "", &syntaxError{t.start, "expected an operand before ')'"}
				}
				depth--
				operand = false
			default:
				return "", &syntaxError{t.start, fmt.Sprintf("expected an operand before %q", text(t))}
			}
			continue
		}
		// Operator position.
		switch t.kind {
		case tokName:
			if t.prefix == "" && !t.paren {
				switch t.local {
				case "and", "or", "div", "mod":
					operand = true
					continue
				}
			}
			return "", &syntaxError{t.start, fmt.Sprintf("expected an operator, found %q", text(t))}
		case tokStar, tokOp, tokSlash, tokSlashSlash, tokComma:
			operand = true
		case tokLBracket:
			depth++
			operand = true
		case tokRParen, tokRBracket:
			depth--
			if depth < 0 {
				return "", &syntaxError{t.start, fmt.Sprintf("unbalanced %q", text(t))}
			}
		default:
			return "", &syntaxError{t.start, fmt.Sprintf("expected an operator, found %q", text(t))}
		}
	}
	switch {
	case depth > 0:
		return "", &syntaxError{len(expr), "unclosed '(' or '['"}
	case operand && !loneSlash:
		return "", &syntaxError{len(expr), "the expression is incomplete"}
	}
	if last == 0 {
		return expr, nil
	}
	sb.WriteString(expr[last:])
	return sb.String(), nil
}

// xpathLiteral quotes s as an XPath 1.0 string expression.
func xpathLiteral(s string) string {
	switch {
	case !strings.Contains(s, "'"):
		return "'" + s + "'"
	case !strings.Contains(s, `"`):
		return `"` + s + `"`
	}
	// Both quote characters: concat('a', "'", 'b').
	parts := strings.Split(s, "'")
	var sb strings.Builder
	sb.WriteString("concat(")
	for i, p := range parts {
		if i > 0 {
			sb.WriteString(`,"'",`)
		}
		sb.WriteString("'" + p + "'")
	}
	sb.WriteString(")")
	return sb.String()
}
