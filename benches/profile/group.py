#!/usr/bin/env python3
"""Groups a `perf script -F comm,tid,ip,sym` dump of the server (recorded with
`--call-graph dwarf`) by the tokio task each sample ran in and, inside the media socket's
reader task, by the step of the packet's path. Prints a Markdown table.

    python3 benches/profile/group.py server.script
"""
import sys, re, collections

def samples(path):
    cur=None; frames=[]
    for line in open(path, errors='replace'):
        if not line.strip():
            if cur is not None: yield cur, frames
            cur=None; frames=[]; continue
        if not line.startswith('\t') and not line.startswith(' '):
            cur=line.split()[0]; frames=[]
        else:
            parts=line.strip().split(None,1)
            frames.append(parts[1] if len(parts)>1 else '?')
    if cur is not None: yield cur, frames
SKIP=re.compile(r'^(tokio::|std::|core::|<core::|<std::|<tokio::|__rust|alloc::|<alloc::|\[unknown\]|clone3|start_thread|<F as|<futures|futures_util|<tracing|tracing::|<T as|<Pin)')
def task_of(frames):
    # root is last; find the frame called right after the last Core::poll from the root
    rev=list(reversed(frames))
    idx=None
    for i,f in enumerate(rev):
        if 'runtime::task::core::Core<T,S>::poll' in f or 'task::harness::poll_future' in f: idx=i
    if idx is None:
        return None
    for f in rev[idx+1:]:
        if not SKIP.match(f) and 'Core<T,S>::poll' not in f:
            return re.sub(r'::\{\{closure\}\}.*','',f)[:90]
    return 'tokio-internal'
def leaf_cat(frames):
    s=' | '.join(frames)
    rules=[('recvmmsg (socket read, kernel incl.)', 'MediaSocket::try_recv'),
           ('sendmsg of forwarded copies (kernel incl.)', 'UdpMux::send'),
           ('SRTP protect (encrypt)', 'protect_rtp'),
           ('SRTP unprotect (decrypt)', 'unprotect_rtp'),
           ('DownTrack::prepare (munging, extensions)', 'DownTrack::prepare'),
           ('Egress::send other', 'Egress::send'),
           ('Packet::unmarshal', 'Unmarshal>::unmarshal'),
           ('alloc/free', 'malloc'), ('alloc/free', '_int_free'), ('alloc/free','cfree'),('alloc/free','drop_in_place<rtp::packet::Packet>'),
           ('memcpy', 'memmove'),
           ('FanOut/forward other', 'FanOut::forward'),
           ('PublishedTrack::receive other', 'PublishedTrack::receive'),
           ('ingress RTCP', 'receive_rtcp'),
           ('transport-cc on_datagram', 'TransportFeedback::on_datagram'),
           ('Ingress::receive other', 'Ingress::receive'),
           ('mux dispatch/table', 'UdpMux::dispatch'),
          ]
    for name, pat in rules:
        if pat in s: return name
    return 'reader other'
def cat(frames):
    s=' | '.join(frames)
    t=task_of(frames) or ''
    if 'UdpMux::read' in t:
        if 'UdpMux::send' in s: return 'reader: sendmsg of the copies (kernel, incl. loopback delivery to the bots)'
        if 'protect_rtp' in s: return 'reader: SRTP encrypt of the copies'
        if 'DownTrack::prepare' in s: return 'reader: DownTrack::prepare (munging, extensions, copy into the send buffer)'
        if 'Egress::send' in s or 'FanOut::forward' in s or 'DownTrack::forward' in s or 'DownTrack::send' in s: return 'reader: fan-out and Egress::send bookkeeping'
        if 'try_recv' in s: return 'reader: recvmmsg (kernel)'
        if 'receive_rtcp' in s or 'ingress::rtcp' in s: return "reader: subscribers' SRTCP (decrypt, dispatch, NACK answers)"
        if 'unprotect_rtp' in s: return "reader: SRTP decrypt of publishers' RTP"
        if 'unmarshal' in s or 'malloc' in s or '_int_free' in s or 'cfree' in s or 'drop_in_place<rtp::packet' in s or 'copy_from_slice' in s or 'Bytes' in s: return 'reader: per-packet Bytes copy, rtp::Packet parse and free'
        return 'reader: the rest (mux lookup, transport-cc record, replay window, NACK state, cache insert)'
    if 'mio::poll' in t or 'Condvar' in t or 'tokio-internal' in t or t.startswith('(thread park') or 'notify_one' in t or 'Waker::wake' in t: return 'tokio workers: park/unpark (epoll_wait, futex), scheduling'
    if 'send_feedback' in t: return 'transport-cc feedback, NACKs, RRs to publishers (50 ms timer per connection)'
    if 'subscriber_rtcp' in t:
        if 'write_rtcp' in s or 'send_rtcp' in s or 'sender_report' in s: return 'sender reports, one task per down track'
        return 'subscriber_rtcp::run: waiting on webrtc-rs read_rtcp (what the fast path leaves)'
    if 'webrtc_ice' in t: return 'webrtc-rs ICE agent (STUN checks, candidate loop)'
    if 'interceptor' in t: return "webrtc-rs interceptors' timers (NACK generator, stats)"
    if 'run_session' in t or 'axum' in t or 'http' in t: return 'signaling (sessions, WebSocket)'
    return 'other: '+t[:50]
path=sys.argv[1]
c=collections.Counter(); n=0
for comm,frames in samples(path):
    n+=1; c[cat(frames)]+=1
print('samples',n)
for k,v in c.most_common():
    print(f'| {k} | {100*v/n:.1f} % |')
