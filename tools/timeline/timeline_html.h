// Prints a timeline Layout as inline SVG inside one self-contained HTML page:
// inline CSS, no script, no font, image or anything else from the network,
// so the file can be mailed, attached to an incident or opened offline.
//
// Every drawn event carries stable attributes a test (or a person with the
// browser's inspector) can find it by:
//   marks:  <g class="mark" data-run data-lane data-event data-token data-term data-ms>
//   bars:   <rect data-run data-lane data-bar="lease|term|stale|pause" data-owner
//            data-token data-start-event data-end-event data-from-ms data-to-ms>
//   shaded: <rect data-run data-window="both-led" data-from-ms data-to-ms>
// data-token is "" when the line carries no token (a store with fencing off).
// Pure: strings in, strings out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tools/timeline/timeline.h"

namespace fence::tools::timeline {

// Escapes &, <, >, " and ' for text and attribute values.
std::string HtmlEscape(std::string_view text);

// One run's timeline as an <svg> element; `run` names it in data-run and in
// the ids of its patterns (so several timelines can share a page).
std::string TimelineSvg(const Layout& layout, const std::string& run);

// The key to the shapes and colours, as a small inline SVG (no data-event).
std::string LegendSvg();

// A <section> with a heading, a paragraph of plain text (escaped), the
// timeline and the legend; a clear sentence instead when it has no events.
std::string TimelineSection(const std::string& run, const std::string& heading,
                            const std::string& text, const Layout& layout);

// A whole HTML document around `body_html` (already HTML), with the page's
// inline style sheet.
std::string HtmlPage(const std::string& title, const std::string& body_html);

}  // namespace fence::tools::timeline
