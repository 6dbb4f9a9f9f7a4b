#!/usr/bin/env node
// Unit tests of the web client's decisions, run in Node without a browser or server:
// `node --test tests/browser/unit.mjs`. These are the pure functions of web/js: which layer a
// tile asks for, what a capture failure tells the user, the msid mapping of remote tracks,
// avatar initials, the grid's geometry, and reading stats the way Chrome and Firefox write them.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { qualityFor } from '../../web/js/quality.js';
import { captureErrorMessage } from '../../web/js/media.js';
import { msidOf } from '../../web/js/session.js';
import { gridLayout, initials, codecName } from '../../web/js/tiles.js';
import { layerActive, selectedCandidatePair } from '../../web/js/support.js';

test('a tile asks for the layer its drawn height needs', () => {
  assert.equal(qualityFor({ width: 108, height: 85, visible: true }), 'low');
  assert.equal(qualityFor({ width: 584, height: 329, visible: true }), 'medium');
  assert.equal(qualityFor({ width: 988, height: 555, visible: true }), 'high');
  // Device pixels count: a 200 px tall tile on a 2x screen needs 400 rows.
  assert.equal(qualityFor({ width: 356, height: 200, devicePixelRatio: 2, visible: true }), 'medium');
});

test('a tile out of sight or of no size asks for nothing', () => {
  assert.equal(qualityFor({ width: 988, height: 555, visible: false }), 'off');
  assert.equal(qualityFor({ width: 0, height: 0, visible: true }), 'off');
});

test('each capture failure gets its own message', () => {
  const error = (name) => new DOMException('x', name);
  assert.match(captureErrorMessage(error('NotAllowedError')), /blocked/i);
  const missing = captureErrorMessage(error('NotFoundError'), 'camera');
  assert.match(missing, /no camera was found/i);
  assert.doesNotMatch(missing, /blocked/i);
  assert.match(captureErrorMessage(error('NotReadableError'), 'microphone'), /another application/i);
  assert.match(captureErrorMessage(error('OverconstrainedError'), 'camera'), /choose another device/i);
  assert.match(captureErrorMessage(error('NotAllowedError'), 'screen'), /cancelled|not allowed/i);
});

test('the msid of a media section names the publisher and the track', () => {
  const sdp = [
    'v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=msid:PA_ann TR_1',
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=msid:PA_ben TR_2',
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', 'a=inactive',
  ].join('\r\n');
  assert.deepEqual(msidOf(sdp, '1'), { streamId: 'PA_ben', trackId: 'TR_2' });
  assert.deepEqual(msidOf(sdp, '0'), { streamId: 'PA_ann', trackId: 'TR_1' });
  assert.equal(msidOf(sdp, '2'), undefined, 'an inactive section carries nothing');
  assert.equal(msidOf(sdp, '7'), undefined);
  assert.equal(msidOf(sdp, null), undefined);
});

test('avatars show up to two initials', () => {
  assert.equal(initials('Ann Lee'), 'AL');
  assert.equal(initials('  cleo  '), 'C');
  assert.equal(initials('Jean Paul Sartre'), 'JS');
  assert.equal(initials('   '), '?');
});

/** A stand-in for a tile: what the layout reads of it. */
function tile(videoWidth = 1280, videoHeight = 720) {
  return { video: { videoWidth, videoHeight }, root: { classList: { contains: () => false } } };
}

function assertInsideAndApart(placements, width, height) {
  const boxes = [...placements.values()];
  for (const box of boxes) {
    assert.ok(box.x >= 0 && box.y >= 0, JSON.stringify(box));
    assert.ok(box.x + box.width <= width && box.y + box.height <= height, JSON.stringify(box));
  }
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
      assert.ok(apart, `overlap: ${JSON.stringify(a)} ${JSON.stringify(b)}`);
    }
  }
}

test('a desktop grid keeps every tile 16:9, inside the stage, none overlapping', () => {
  for (const count of [1, 2, 3, 4, 6, 9, 16]) {
    const tiles = Array.from({ length: count }, () => tile());
    const placements = gridLayout(tiles, 1248, 660);
    assert.equal(placements.size, count);
    assertInsideAndApart(placements, 1248, 660);
    for (const box of placements.values()) {
      assert.ok(Math.abs(box.width / box.height - 16 / 9) < 0.02, `${count}: ${JSON.stringify(box)}`);
    }
  }
  // Three on a wide stage: two columns, as large as they can be.
  const three = [...gridLayout([tile(), tile(), tile()], 1248, 660).values()];
  assert.ok(three[0].width > 560, JSON.stringify(three));
});

test('a phone grid stacks tiles and lets them grow taller than 16:9', () => {
  const placements = gridLayout([tile(480, 640), tile(480, 640)], 374, 700);
  assertInsideAndApart(placements, 374, 700);
  const [first, second] = [...placements.values()];
  assert.equal(first.x, second.x, 'one column');
  assert.ok(first.height > first.width * (9 / 16) + 1, JSON.stringify(first));
});

test('a simulcast layer is active as Chrome reports it, or as the sender has it in Firefox', () => {
  // Chrome: outbound-rtp has `active`.
  assert.equal(layerActive({ rid: 'f', active: false }, [{ rid: 'f', active: true }]), false);
  assert.equal(layerActive({ rid: 'q', active: true }), true);
  // Firefox: no `active` in the report; the sender's encodings say it.
  const encodings = [{ rid: 'q', active: true }, { rid: 'h', active: false }];
  assert.equal(layerActive({ rid: 'h' }, encodings), false);
  assert.equal(layerActive({ rid: 'q' }, encodings), true);
  // Neither says: the layer counts as sent.
  assert.equal(layerActive({ rid: 'x' }, encodings), true);
  assert.equal(layerActive({}), true);
});

test('the selected candidate pair is found in Chrome\'s and Firefox\'s stats', () => {
  const map = (reports) => new Map(reports.map((r) => [r.id, r]));
  const chrome = map([
    { id: 'T', type: 'transport', selectedCandidatePairId: 'P2' },
    { id: 'P1', type: 'candidate-pair', nominated: true, state: 'succeeded' },
    { id: 'P2', type: 'candidate-pair', nominated: true, state: 'succeeded', currentRoundTripTime: 0.01 },
  ]);
  assert.equal(selectedCandidatePair(chrome).id, 'P2');
  // Firefox: no transport report with the pair; the pair says `selected`.
  const firefox = map([
    { id: 'P1', type: 'candidate-pair', nominated: true, state: 'succeeded' },
    { id: 'P2', type: 'candidate-pair', nominated: true, state: 'succeeded', selected: true },
  ]);
  assert.equal(selectedCandidatePair(firefox).id, 'P2');
  const neither = map([
    { id: 'P1', type: 'candidate-pair', nominated: false, state: 'succeeded' },
    { id: 'P2', type: 'candidate-pair', nominated: true, state: 'succeeded' },
  ]);
  assert.equal(selectedCandidatePair(neither).id, 'P2');
  assert.equal(selectedCandidatePair(map([])), undefined);
});

test('codecs are named for people', () => {
  assert.equal(codecName('video/H264'), 'H.264');
  assert.equal(codecName('video/vp8'), 'VP8');
  assert.equal(codecName('video/AV1'), 'AV1');
});
