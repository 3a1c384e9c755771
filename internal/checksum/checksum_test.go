package checksum

import (
	"hash/crc32"
	"testing"
)

// The CRC32C of "123456789" is the check value of the Castagnoli
// polynomial (RFC 3720, B.4): what any other implementation computes.
func TestCRC32CCheckValue(t *testing.T) {
	var c CRC32C
	c.Update([]byte("1234"))
	c.Update([]byte("56789"))
	if got := c.String(); got != "e3069283" {
		t.Fatalf("CRC32C(123456789) = %s, want e3069283", got)
	}
	if got := FormatCRC32C(crc32.Checksum([]byte("123456789"), crc32.MakeTable(crc32.Castagnoli))); got != "e3069283" {
		t.Fatalf("FormatCRC32C = %s", got)
	}
	md, crc := Of([]byte("123456789"))
	if md != "25f9e794323b453885f5181f1b624d0b" || crc != "e3069283" {
		t.Fatalf("Of = %s %s", md, crc)
	}
	b := New(true)
	b.Write([]byte("12345"))
	b.Write([]byte("6789"))
	if m, c := b.Sums(); m != md || c != crc {
		t.Fatalf("Hash with md5 = %s %s, want %s %s", m, c, md, crc)
	}
	b = New(false)
	b.Write([]byte("123456789"))
	if m, c := b.Sums(); m != "" || c != crc {
		t.Fatalf("Hash without md5 = %q %s, want \"\" %s", m, c, crc)
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{"e3069283": true, "E3069283": false, "e306928": false, "e306928g": false, "00000000": true, "": false} {
		if ValidCRC32C(s) != want {
			t.Errorf("ValidCRC32C(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"25f9e794323b453885f5181f1b624d0b": true, "25F9E794323B453885F5181F1B624D0B": false, "25f9": false} {
		if ValidMD5(s) != want {
			t.Errorf("ValidMD5(%q) = %v", s, !want)
		}
	}
}
