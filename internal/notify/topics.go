package notify

import (
	"fmt"
	"strings"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
)

// Topic expression dialects: WS-Topics 1.2 draft 01 (GT 4.0) and WS-Topics 1.3. A
// topic of vws is a root topic (a resource property's QName, or WS-ResourceLifetime's
// ResourceTermination), so Simple and Concrete expressions name the same topics.
const (
	simpleGT4     = "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple"
	concreteGT4   = "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Concrete"
	fullGT4       = "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Full"
	simpleWSN13   = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
	concreteWSN13 = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
	fullWSN13     = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Full"
)

func simpleDialect(d *dialect.Dialect) string {
	if d == dialect.GT4 {
		return simpleGT4
	}
	return simpleWSN13
}

func concreteDialect(d *dialect.Dialect) string {
	if d == dialect.GT4 {
		return concreteGT4
	}
	return concreteWSN13
}

// Termination is WS-ResourceLifetime's topic of a resource's end, in dialect d.
func Termination(d *dialect.Dialect) wsa.QName {
	return wsa.QName{Space: d.RL, Local: "ResourceTermination"}
}

// isTermination reports whether q is ResourceTermination in either dialect.
func isTermination(q wsa.QName) bool {
	if q.Local != "ResourceTermination" {
		return false
	}
	for _, d := range dialect.Dialects {
		if q.Space == d.RL {
			return true
		}
	}
	return false
}

// parseTopics reads a TopicExpression element into the topics it names, which must
// be among offered (the value-change topics) or ResourceTermination.
func parseTopics(el *etree.Element, offered []wsa.QName) ([]wsa.QName, error) {
	d := strings.TrimSpace(el.SelectAttrValue("Dialect", ""))
	switch d {
	case simpleGT4, concreteGT4, simpleWSN13, concreteWSN13:
	case fullGT4, fullWSN13:
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: the Full dialect %s is not supported", errdefs.ErrTopicDialectUnknown, d),
			"name one topic per subscription with the Simple dialect ("+simpleGT4+" or "+simpleWSN13+")")
	case "":
		return nil, fmt.Errorf("%w: the TopicExpression has no Dialect attribute", errdefs.ErrTopicDialectUnknown)
	default:
		return nil, fmt.Errorf("%w: %s", errdefs.ErrTopicDialectUnknown, d)
	}
	text := strings.TrimSpace(el.Text())
	if text == "" {
		return nil, fmt.Errorf("%w: the TopicExpression is empty", errdefs.ErrInvalidTopic)
	}
	if strings.ContainsAny(text, "/|*") {
		// Concrete paths below a root topic: vws's topics have no children.
		return nil, fmt.Errorf("%w: %q names a topic below a root topic; vws's topics have none", errdefs.ErrTopicNotSupported, text)
	}
	q, err := wsa.ResolveQName(el, text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errdefs.ErrInvalidTopic, err)
	}
	if q.Space == "" {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: %q has no namespace prefix", errdefs.ErrInvalidTopic, text),
			"qualify the topic, e.g. vw:state with xmlns:vw declared on the TopicExpression")
	}
	if isTermination(q) {
		return []wsa.QName{q}, nil
	}
	for _, o := range offered {
		if o == q {
			return []wsa.QName{q}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not a topic of this resource (its topics: %s and ResourceTermination)", errdefs.ErrTopicNotSupported, q, names(offered))
}

func names(qs []wsa.QName) string {
	s := make([]string, len(qs))
	for i, q := range qs {
		s[i] = q.Local
	}
	return strings.Join(s, ", ")
}

// topicElement renders topic q as a Simple expression named {d.BN}local.
func topicElement(d *dialect.Dialect, local string, q wsa.QName) *etree.Element {
	el := etree.NewElement("wsnt:" + local)
	el.CreateAttr("xmlns:wsnt", d.BN)
	el.CreateAttr("Dialect", simpleDialect(d))
	el.CreateAttr("xmlns:t", q.Space)
	el.SetText("t:" + q.Local)
	return el
}

// ProducerProperties renders the WS-BaseNotification producer properties of a
// resource offering topics (and ResourceTermination), in dialect d: GT 4.0's Topic,
// FixedTopicSet and TopicExpressionDialects; WSN 1.3's TopicExpression, FixedTopicSet
// and TopicExpressionDialect.
func ProducerProperties(d *dialect.Dialect, topics []wsa.QName) []*etree.Element {
	topicName, dialectName := "TopicExpression", "TopicExpressionDialect"
	if d == dialect.GT4 {
		topicName, dialectName = "Topic", "TopicExpressionDialects"
	}
	var out []*etree.Element
	for _, q := range append(append([]wsa.QName(nil), topics...), Termination(d)) {
		out = append(out, topicElement(d, topicName, q))
	}
	fixed := etree.NewElement("wsnt:FixedTopicSet")
	fixed.CreateAttr("xmlns:wsnt", d.BN)
	fixed.SetText("true")
	out = append(out, fixed)
	for _, u := range []string{simpleDialect(d), concreteDialect(d)} {
		el := etree.NewElement("wsnt:" + dialectName)
		el.CreateAttr("xmlns:wsnt", d.BN)
		el.SetText(u)
		out = append(out, el)
	}
	return out
}

// ProducerProperties renders the producer properties of the broker's topics.
func (b *Broker) ProducerProperties(d *dialect.Dialect) []*etree.Element {
	return ProducerProperties(d, b.cfg.Topics)
}
