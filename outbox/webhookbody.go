package outbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// webhookEnvelope is the JSON body sent to receivers.
type webhookEnvelope struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Timestamp      string          `json:"timestamp"`
	OrganizationID *string         `json:"organization_id"`
	AgentID        *string         `json:"agent_id"`
	Data           json.RawMessage `json:"data"`
}

// WebhookBody is the body a delivery of event sends: the Standard Webhooks
// envelope around its payload (see docs/events.md).
func WebhookBody(event *Event) ([]byte, error) {
	var data bytes.Buffer
	if err := json.Compact(&data, event.Payload); err != nil {
		return nil, fmt.Errorf("event %s payload: %w", event.ID, err)
	}
	body := webhookEnvelope{
		ID:        event.ID,
		Type:      event.Type,
		Timestamp: event.CreatedAt.UTC().Format(time.RFC3339Nano),
		Data:      data.Bytes(),
	}
	if event.OrganizationID != "" {
		body.OrganizationID = &event.OrganizationID
	}
	if event.AgentID != "" {
		body.AgentID = &event.AgentID
	}
	return json.Marshal(body)
}
