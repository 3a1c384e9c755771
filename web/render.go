package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/internal/human"
	"github.com/tapefs/tapefs/internal/ident"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

//go:embed templates/*.html static/style.css
var assets embed.FS

// templates are the parsed pages, each with the shared layout.
type templates struct {
	pages map[string]*template.Template
	css   template.CSS
	csp   string
}

var pageNames = []string{"overview", "batches", "batch", "error"}

func mustTemplates() *templates {
	css, err := assets.ReadFile("static/style.css")
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(css)
	t := &templates{
		pages: map[string]*template.Template{},
		css:   template.CSS(css),
		// No script at all; the one stylesheet is inline, allowed by its
		// hash; the favicon is an empty data: URL.
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	for _, name := range pageNames {
		p := template.Must(template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
		t.pages[name] = p
	}
	return t
}

// page is what every page's layout needs.
type page struct {
	Title   string
	Nav     string // "overview", "batches": the highlighted link
	Refresh int    // seconds; 0: the page does not refresh itself
	Now     time.Time
	CSS     template.CSS
	// FeedWorkspace: the page is about one workspace, whose feed its
	// head links to besides the whole one.
	FeedWorkspace string
	token         string
}

// L builds a link to path with query parameters (name, value pairs; empty
// strings and zero numbers are left out), carrying the token when the page was asked for
// with one.
func (p *page) L(path string, kv ...any) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		var v string
		switch x := kv[i+1].(type) {
		case uint64, int, int64:
			if v = fmt.Sprint(x); v == "0" {
				continue // a cursor or limit of 0 is the default
			}
		default:
			v = fmt.Sprint(x)
		}
		if v != "" {
			q.Add(fmt.Sprint(kv[i]), v)
		}
	}
	if p.token != "" {
		q.Set("token", p.token)
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// Token is the token hidden in forms, when links carry one.
func (p *page) Token() string { return p.token }

func (s *Server) newPage(r *http.Request, title, nav string) page {
	return page{Title: title, Nav: nav, Now: s.now(), CSS: s.pages.css, token: s.linkToken(r)}
}

// render writes a page; a template error is logged (the status line is
// already sent with the first byte, so it is rendered into a buffer first).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error().Err(err).Str("page", name).Str("path", r.URL.Path).Msg("status page failed to render")
		http.Error(w, "the page failed to render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.pages.csp)
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

type errorPage struct {
	page
	Code    int
	Message string
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	p := errorPage{page: s.newPage(r, http.StatusText(code), ""), Code: code, Message: msg}
	s.render(w, r, code, "error", &p)
}

var funcs = template.FuncMap{
	"size":      human.Size,
	"rate":      humanRate,
	"pct":       pct,
	"when":      when,
	"ago":       ago,
	"full":      func(t time.Time) string { return fullTime(t) },
	"printable": printable,
	"stateClass": func(st archive.BatchState) string {
		return "st-" + strings.ToLower(strings.ReplaceAll(string(st), "_", "-"))
	},
	"failure":   isFailure,
	"num":       func(n int64) string { return groupDigits(n) },
	"dict":      dict,
	"eta":       etaText,
	"fileCount": fileCount,
	"user":      ident.UserText,
	"group":     ident.GroupText,
}

// fileCount is a batch's files and symbolic links, directories left out
// where they were counted apart (else every entry).
func fileCount(b archive.Batch) int64 {
	if b.Kinds {
		return b.Files - b.Dirs
	}
	return b.Files
}

// etaText is an estimate left of one made at at, in whole seconds as a
// duration ("1m43s").
func etaText(d time.Duration, at time.Time) string {
	left := max(0, d-time.Since(at))
	return ((left + time.Second - 1) / time.Second * time.Second).String()
}

// dict passes several values to a template: {{template "x" (dict "A" 1 "B" 2)}}.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// humanRate is human.Rate, with a dash of the page's typography for none.
func humanRate(bps float64) string {
	if r := human.Rate(bps); r != "-" {
		return r
	}
	return "—"
}

// pct is part of whole in percent, for meters and labels (0 when whole is 0).
func pct(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return math.Round(1000*float64(part)/float64(whole)) / 10
}

// when is a timestamp for a table cell: the time of day for today, the
// date and time otherwise; "—" for none.
func when(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.Local()
	n := now.Local()
	if t.Year() == n.Year() && t.YearDay() == n.YearDay() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04")
}

func fullTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// ago is how long before now t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// printable shows control characters of a name (a newline in a path) as Go
// escapes, so that a name shows on one line and cannot pass for another.
// HTML escaping is the template's.
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) || r == ' ' {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
