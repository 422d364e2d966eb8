package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// node is a JSON value that keeps its objects' keys in document order, so the
// reference lists paths, fields and responses in the order the document's
// authors chose.
type node struct {
	keys   []string // object keys, in order
	fields map[string]*node
	items  []*node // array elements
	value  any     // string, json.Number, bool or nil for scalars
	isObj  bool
	isArr  bool
}

func parseOrdered(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the document")
	}
	return n, nil
}

func parseNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		n := &node{isObj: true, fields: map[string]*node{}}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := keyTok.(string)
			child, err := parseNode(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := n.fields[key]; !dup {
				n.keys = append(n.keys, key)
			}
			n.fields[key] = child
		}
		_, err := dec.Token() // }
		return n, err
	case json.Delim('['):
		n := &node{isArr: true}
		for dec.More() {
			child, err := parseNode(dec)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, child)
		}
		_, err := dec.Token() // ]
		return n, err
	}
	return &node{value: tok}, nil
}

// get follows keys through objects; nil when any is missing.
func (n *node) get(keys ...string) *node {
	for _, k := range keys {
		if n == nil || !n.isObj {
			return nil
		}
		n = n.fields[k]
	}
	return n
}

// str is a string value, or "" for anything else.
func (n *node) str() string {
	if n == nil {
		return ""
	}
	s, _ := n.value.(string)
	return s
}

// bool is a boolean value, false for anything else.
func (n *node) bool() bool {
	if n == nil {
		return false
	}
	b, _ := n.value.(bool)
	return b
}

// scalar renders a scalar as JSON text (a number, a quoted string, true).
func (n *node) scalar() string {
	if n == nil {
		return ""
	}
	if n.isObj || n.isArr {
		var b strings.Builder
		n.writeJSON(&b)
		return b.String()
	}
	data, _ := json.Marshal(n.value)
	return string(data)
}

func (n *node) writeJSON(b *strings.Builder) {
	switch {
	case n.isObj:
		b.WriteString("{")
		for i, k := range n.keys {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(b, "%q:", k)
			n.fields[k].writeJSON(b)
		}
		b.WriteString("}")
	case n.isArr:
		b.WriteString("[")
		for i, item := range n.items {
			if i > 0 {
				b.WriteString(",")
			}
			item.writeJSON(b)
		}
		b.WriteString("]")
	default:
		b.WriteString(n.scalar())
	}
}
