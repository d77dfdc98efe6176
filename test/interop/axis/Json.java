package vwsinterop;

import java.util.List;
import java.util.Map;

/** A minimal JSON object writer (the JDK has none and the report is small). */
final class Json {
    private final StringBuilder b = new StringBuilder("{");
    private boolean first = true;

    private Json key(String k) {
        if (!first) {
            b.append(',');
        }
        first = false;
        b.append('\n').append(quote(k)).append(": ");
        return this;
    }

    Json field(String k, String v) {
        key(k).b.append(v == null ? "null" : quote(v));
        return this;
    }

    Json raw(String k, String json) {
        key(k).b.append(json);
        return this;
    }

    Json list(String k, List<String> vs) {
        key(k).b.append(array(vs));
        return this;
    }

    Json map(String k, Map<String, List<String>> m) {
        Json o = new Json();
        for (Map.Entry<String, List<String>> e : m.entrySet()) {
            o.list(e.getKey(), e.getValue());
        }
        return raw(k, o.end());
    }

    String end() {
        return b.append("\n}").toString();
    }

    static String array(List<String> vs) {
        StringBuilder a = new StringBuilder("[");
        for (int i = 0; i < vs.size(); i++) {
            a.append(i == 0 ? "" : ", ").append(quote(vs.get(i)));
        }
        return a.append(']').toString();
    }

    static String quote(String s) {
        StringBuilder q = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': q.append("\\\""); break;
                case '\\': q.append("\\\\"); break;
                case '\n': q.append("\\n"); break;
                case '\r': q.append("\\r"); break;
                case '\t': q.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        q.append(String.format("\\u%04x", (int) c));
                    } else {
                        q.append(c);
                    }
            }
        }
        return q.append('"').toString();
    }
}
