// Command formvalue reads one HTTP request from stdin as an Ollama server reads an audio
// transcription: net/http's ParseMultipartForm, then FormValue and FormFile. It prints what
// they give as one JSON object on stdout:
//
//	{"model": FormValue("model"), "response_format": ..., "language": ..., "prompt": ...,
//	 "form": r.Form, "post_form": r.PostForm, "values": the body's values,
//	 "files": {name: [{"filename", "size", "sha256", "content_type"}]}, "file": FormFile("file") or null}
//
// or {"error": "..."} when ParseMultipartForm fails. Strings are written byte for byte as
// the runes U+0000 to U+00FF (Latin-1), so that a reader gets Go's exact bytes back even
// where they are no UTF-8. Only the standard library is used: `go build main.go` builds it.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
)

// maxMemory is what Ollama's TranscriptionMiddleware gives ParseMultipartForm (25 MB).
const maxMemory = 25 << 20

type file struct {
	Filename    string `json:"filename"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
}

// latin1 returns s with each byte as the rune of the same number, so JSON keeps every byte.
func latin1(s string) string {
	runes := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		runes[i] = rune(s[i])
	}
	return string(runes)
}

func values(in map[string][]string) map[string][]string {
	out := make(map[string][]string, len(in))
	for key, list := range in {
		copied := make([]string, len(list))
		for i, v := range list {
			copied[i] = latin1(v)
		}
		out[latin1(key)] = copied
	}
	return out
}

func describe(header *multipart.FileHeader) (file, error) {
	f, err := header.Open()
	if err != nil {
		return file{}, err
	}
	defer f.Close()
	sum := sha256.New()
	size, err := io.Copy(sum, f)
	if err != nil {
		return file{}, err
	}
	return file{Filename: latin1(header.Filename), Size: size, SHA256: hex.EncodeToString(sum.Sum(nil)),
		ContentType: latin1(header.Header.Get("Content-Type"))}, nil
}

func read(r *http.Request) (map[string]any, error) {
	if err := r.ParseMultipartForm(maxMemory); err != nil {
		return map[string]any{"error": err.Error()}, nil
	}
	defer r.MultipartForm.RemoveAll()
	files := map[string][]file{}
	for name, headers := range r.MultipartForm.File {
		for _, header := range headers {
			described, err := describe(header)
			if err != nil {
				return nil, err
			}
			files[latin1(name)] = append(files[latin1(name)], described)
		}
	}
	var first any
	if _, header, err := r.FormFile("file"); err == nil {
		described, err := describe(header)
		if err != nil {
			return nil, err
		}
		first = described
	}
	return map[string]any{
		"model":           latin1(r.FormValue("model")),
		"response_format": latin1(r.FormValue("response_format")),
		"language":        latin1(r.FormValue("language")),
		"prompt":          latin1(r.FormValue("prompt")),
		"form":            values(r.Form),
		"post_form":       values(r.PostForm),
		"values":          values(r.MultipartForm.Value),
		"files":           files,
		"file":            first,
	}, nil
}

func main() {
	request, err := http.ReadRequest(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, "formvalue: reading the request:", err)
		os.Exit(2)
	}
	answer, err := read(request)
	if err != nil {
		fmt.Fprintln(os.Stderr, "formvalue:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(answer); err != nil {
		fmt.Fprintln(os.Stderr, "formvalue: writing:", err)
		os.Exit(1)
	}
}
