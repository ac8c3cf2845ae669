package io.rlkernels.testing;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Parses a flat JSON object with a strict parser (Jackson's defaults: NaN, Infinity, comments,
 * single quotes and trailing commas are refused), as a strict consumer of metrics.json would.
 */
public final class StrictJson {
    private StrictJson() {}

    /** Field name to value: Double, Long, String, Boolean, null, or the text of an array. */
    public static Map<String, Object> object(String text) throws IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        try (JsonParser p = new JsonFactory().createParser(text)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new IOException("not a JSON object: " + text);
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                JsonToken t = p.nextToken();
                Object v = switch (t) {
                    case VALUE_NUMBER_INT -> p.getLongValue();
                    case VALUE_NUMBER_FLOAT -> p.getDoubleValue();
                    case VALUE_STRING -> p.getText();
                    case VALUE_TRUE, VALUE_FALSE -> p.getBooleanValue();
                    case VALUE_NULL -> null;
                    case START_ARRAY -> {
                        StringBuilder b = new StringBuilder("[");
                        while (p.nextToken() != JsonToken.END_ARRAY) {
                            b.append(b.length() > 1 ? "," : "").append(p.getText());
                        }
                        yield b.append("]").toString();
                    }
                    default -> throw new IOException("unexpected " + t + " in " + text);
                };
                if (m.containsKey(key)) {
                    throw new IOException("duplicate key " + key + " in " + text);
                }
                m.put(key, v);
            }
            if (p.nextToken() != null) {
                throw new IOException("text after the object: " + text);
            }
        }
        return m;
    }
}
