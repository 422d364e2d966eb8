package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
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
// request and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
		writeProblem(w, http.StatusUnsupportedMediaType, "send the body as Content-Type: application/json")
		return false
	}
	decoder := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, describeJSONError(err))
		return false
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		writeProblem(w, http.StatusBadRequest, "malformed JSON: unexpected data after the object")
		return false
	}
	return true
}

// isJSON reports whether a Content-Type header is application/json, with any
// parameters (charset=utf-8).
func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == "application/json"
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return "malformed JSON: the body is empty; send a JSON object"
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q: expected %s, got a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON: " + err.Error()
}

func writeJSON(w http.ResponseWriter, logger *slog.Logger, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		logger.Warn("write response", slog.String("error", err.Error()))
	}
}
