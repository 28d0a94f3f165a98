package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed ui
var uiFiles embed.FS

// dashboard serves the embedded page (/ and /ui/...). The files hold no
// data: the page reads everything from the API with the token the operator
// gives it, so they need none.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(uiFiles, "ui")
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if r.URL.Path == "/" || name == "" || name == "index.html" {
		name = "index.html"
		if r.URL.Path != "/" {
			http.Redirect(w, r, "/", http.StatusMovedPermanently)
			return
		}
	}
	if !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	http.ServeFileFS(w, r, sub, name)
}
