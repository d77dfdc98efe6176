package wsrf

import (
	"fmt"
	"strings"
)

// ParseBoolean parses an xs:boolean: true, false, 1 or 0 (surrounding whitespace
// collapsed, as the schema's whiteSpace facet says).
func ParseBoolean(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not an xs:boolean (true, false, 1 or 0)", s)
}
