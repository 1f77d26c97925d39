package matcher

import (
	"errors"
	"slices"
	"testing"
)

func TestFileCatalogueValidatesInPlaceOfTheEmbedded(t *testing.T) {
	const old = "url:GET|/api/v1/courses/:course_id/pages/:url_or_id"
	const renamed = "url:GET|/api/v1/courses/:course_id/pages/:page_url"
	list := slices.DeleteFunc(Catalogue(), func(s string) bool { return s == old })
	list = append(list, renamed)
	c, err := NewFileCatalogue(list)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.CheckScope(renamed, false); p != nil {
		t.Errorf("a scope of the file: %s", p.Message())
	}
	p := c.CheckScope(old, false)
	if p == nil || !errors.Is(p.Err, ErrNotInCatalogue) || len(p.Suggestions) == 0 || p.Suggestions[0] != renamed {
		t.Fatalf("a scope the file no longer has: %+v", p)
	}
	if p := c.CheckScope(old, true); p != nil {
		t.Error("allow_unknown_scopes still accepts it")
	}
	if p := c.CheckScope("url:GET|api/v1/courses", false); p == nil {
		t.Error("a malformed scope passed")
	}
	if CheckScope(renamed, false) == nil {
		t.Error("the embedded catalogue has the renamed scope; the test proves nothing")
	}
	again, _ := NewFileCatalogue(slices.Clone(list))
	if again.ID() != c.ID() || (*FileCatalogue)(nil).ID() != "embedded" {
		t.Error("ID does not name the content")
	}
}
