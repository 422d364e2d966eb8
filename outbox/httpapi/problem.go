package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strings"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// Problem is an RFC 9457 problem document, the body of every error response.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Errors []FieldProblem `json:"errors,omitempty"`
}

// FieldProblem names an input field at fault.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func writeProblem(w http.ResponseWriter, status int, detail string, fields ...FieldProblem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&Problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: fields,
	})
}

// writeError answers with the problem an error stands for: bad input 422, unknown
// ids 404, conflicts 409; anything else is logged and answered 500 without detail.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var validation *outbox.ValidationError
	switch {
	case errors.As(err, &validation):
		field := FieldProblem{Field: validation.Field, Message: validation.Message}
		if validation.Hint != "" {
			field.Message += " (" + validation.Hint + ")"
		}
		writeProblem(w, http.StatusUnprocessableEntity, validation.Error(), field)
	case errors.Is(err, outbox.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "no such resource")
	case errors.Is(err, outbox.ErrConflict):
		writeProblem(w, http.StatusConflict, err.Error())
	case errors.Is(err, secretbox.ErrNoKey):
		writeProblem(w, http.StatusServiceUnavailable, "the server has no encryption key for signing secrets (set OUTBOXD_ENCRYPTION_KEY)")
	default:
		logger.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		writeProblem(w, http.StatusInternalServerError, "internal error; see the server's log")
	}
}

// maxRequestBody bounds request bodies; event payloads are limited further by
// the database (256 KiB by default).
const maxRequestBody = 1 << 20

// decodeJSON reads one JSON object into v, refusing unknown fields and trailing
// data. A body must come as Content-Type: application/json, which no HTML form
// and no "simple" cross-site request can send. On failure it has answered the
// request and returns false: 415 for another content type, 413 for a body over
// maxRequestBody, 408 for one that does not arrive in time, 400 for what is not
// a JSON object, and 422 naming the field for a value of the wrong type.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
		writeProblem(w, http.StatusUnsupportedMediaType, "send the body as Content-Type: application/json")
		return false
	}
	decoder := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	decoder.DisallowUnknownFields()
	err := decoder.Decode(v)
	if err == nil {
		if _, err = decoder.Token(); errors.Is(err, io.EOF) {
			return true
		}
		if err == nil || isSyntaxError(err) {
			writeProblem(w, http.StatusBadRequest, "malformed JSON: unexpected data after the object")
			return false
		}
	}
	status, detail, fields := describeJSONError(err)
	writeProblem(w, status, detail, fields...)
	return false
}

func isSyntaxError(err error) bool {
	var syntax *json.SyntaxError
	return errors.As(err, &syntax)
}

// isJSON reports whether a Content-Type header is application/json, with any
// parameters (charset=utf-8).
func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == "application/json"
}

// describeJSONError says what is wrong with a request body in the API's terms,
// never Go's.
func describeJSONError(err error) (status int, detail string, fields []FieldProblem) {
	var (
		syntax     *json.SyntaxError
		typeErr    *json.UnmarshalTypeError
		tooLarge   *http.MaxBytesError
		validation *outbox.ValidationError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "malformed JSON: the body is empty; send a JSON object", nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "malformed JSON: the body ends in the middle of a value", nil
	case errors.As(err, &syntax):
		return http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: ")), nil
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit), nil
	case errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusRequestTimeout, "the body did not arrive within the server's read timeout", nil
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return http.StatusBadRequest, "the body must be a JSON object, not " + jsonValueName(typeErr.Value), nil
	case errors.As(err, &typeErr):
		message := "expected " + jsonTypeName(typeErr.Type) + ", got " + jsonValueName(typeErr.Value)
		return http.StatusUnprocessableEntity, typeErr.Field + ": " + message, []FieldProblem{{Field: typeErr.Field, Message: message}}
	case errors.As(err, &validation):
		return http.StatusUnprocessableEntity, validation.Error(), []FieldProblem{{Field: validation.Field, Message: validation.Message}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return http.StatusBadRequest, "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "), nil
	}
	return http.StatusBadRequest, "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: "), nil
}

// jsonTypeName names the JSON a Go type is decoded from.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonValueName names what a body held, from UnmarshalTypeError.Value ("array",
// "number 1.5").
func jsonValueName(value string) string {
	switch value {
	case "array", "object":
		return "an " + value
	case "string", "number":
		return "a " + value
	case "bool":
		return "a boolean"
	}
	if number, ok := strings.CutPrefix(value, "number "); ok {
		return number
	}
	return value
}

func writeJSON(w http.ResponseWriter, logger *slog.Logger, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		logger.Warn("write response", slog.String("error", err.Error()))
	}
}
