package describe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestArgumentLengthInCharacters: cap:Argument is xs:string with maxLength 4096, i.e.
// 4096 characters (and cidata, the next boundary, counts characters too): an argument
// of 2,100 "é" (4,200 bytes) is valid and accepted.
func TestArgumentLengthInCharacters(t *testing.T) {
	arg := strings.Repeat("é", 2100)
	if n := utf8.RuneCountInString(arg); n > 4096 {
		t.Fatalf("test bug: %d characters", n)
	}
	d, err := validator(t).Validate([]byte(doc(vm, startup("<cap:argument>"+arg+"</cap:argument>"))))
	if err != nil {
		t.Fatalf("an argument of %d characters (%d bytes) is refused: %v", utf8.RuneCountInString(arg), len(arg), err)
	}
	if d.Startup.Args[0] != arg {
		t.Fatal("argument changed")
	}
}
