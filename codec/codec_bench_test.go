package codec_test

import (
	"testing"

	"github.com/flockmq/flockmq/codec"
)

var payloadSizes = []struct {
	name string
	n    int
}{{"16B", 16}, {"256B", 256}, {"64KiB", 64 << 10}}

// benchPublish is a PUBLISH QoS 1 as a broker forwards it; for 5.0 it carries
// the properties a typical application sets.
func benchPublish(v codec.Version, size int) codec.PublishPacket {
	p := codec.PublishPacket{QoS: 1, PacketID: 4242, Topic: []byte("fleet/truck-0042/telemetry/engine"),
		Payload: make([]byte, size)}
	if v == codec.V5 {
		p.Props.Set(codec.PropMessageExpiry)
		p.Props.MessageExpiry = 3600
		p.Props.Set(codec.PropContentType)
		p.Props.ContentType = []byte("application/json")
		p.Props.SubscriptionIDs = []uint32{17}
		p.Props.User = []codec.UserProperty{{Key: []byte("trace-id"), Value: []byte("4bf92f3577b34da6")}}
	}
	return p
}

func benchConnect(v codec.Version) codec.ConnectPacket {
	c := codec.ConnectPacket{Version: v, CleanStart: true, KeepAlive: 60, ClientID: []byte("truck-0042"),
		WillFlag: true, WillQoS: 1, WillTopic: []byte("fleet/truck-0042/status"), WillPayload: []byte("offline"),
		UsernameFlag: true, Username: []byte("truck"), PasswordFlag: true, Password: []byte("s3cret-t0ken")}
	if v == codec.V5 {
		c.Props.Set(codec.PropSessionExpiry)
		c.Props.SessionExpiry = 86400
		c.Props.Set(codec.PropReceiveMaximum)
		c.Props.ReceiveMaximum = 64
		c.Props.Set(codec.PropTopicAliasMaximum)
		c.Props.TopicAliasMaximum = 16
		c.WillProps.Set(codec.PropWillDelay)
		c.WillProps.WillDelay = 30
	}
	return c
}

func reportPackets(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		for _, s := range payloadSizes {
			b.Run(v.String()+"/"+s.name, func(b *testing.B) {
				p := benchPublish(v, s.n)
				buf := codec.AppendPublish(nil, &p, v)
				var pk codec.Packet
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := codec.Decode(buf, v, 0, &pk); err != nil {
						b.Fatal(err)
					}
				}
				reportPackets(b)
			})
		}
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		for _, s := range payloadSizes {
			b.Run(v.String()+"/"+s.name, func(b *testing.B) {
				p := benchPublish(v, s.n)
				buf := make([]byte, 0, codec.PublishSize(&p, v))
				b.SetBytes(int64(cap(buf)))
				b.ReportAllocs()
				for b.Loop() {
					buf = codec.AppendPublish(buf[:0], &p, v)
				}
				reportPackets(b)
			})
		}
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		b.Run(v.String(), func(b *testing.B) {
			c := benchConnect(v)
			buf := codec.AppendConnect(nil, &c)
			var pk codec.Packet
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Decode(buf, 0, 0, &pk); err != nil {
					b.Fatal(err)
				}
			}
			reportPackets(b)
		})
	}
}

func BenchmarkEncodeConnect(b *testing.B) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		b.Run(v.String(), func(b *testing.B) {
			c := benchConnect(v)
			buf := codec.AppendConnect(nil, &c)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = codec.AppendConnect(buf[:0], &c)
			}
			reportPackets(b)
		})
	}
}
