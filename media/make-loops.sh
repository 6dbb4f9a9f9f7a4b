#!/usr/bin/env bash
# Regenerates the media loops the headless bots publish, from ffmpeg's synthetic sources only
# (no third-party footage). Needs ffmpeg with libvpx, libx264 and libopus.
#
#   vp8-320x180.ivf    VP8 in IVF, 10 s, 30 fps, ~150 kbps   (simulcast layer q)
#   vp8-640x360.ivf    VP8 in IVF, 10 s, 30 fps, ~500 kbps   (simulcast layer h; the default video)
#   vp8-1280x720.ivf   VP8 in IVF, 10 s, 30 fps, ~1.5 Mbps   (simulcast layer f)
#   h264-320x180.h264  H.264 Annex-B, constrained baseline level 3.1 (42e01f), 10 s, 30 fps,
#                      ~150 kbps, one slice per picture, SPS/PPS before every IDR, no B-frames
#                      (simulcast layer q)
#   h264-640x360.h264  the same at ~500 kbps (simulcast layer h; the default H.264 video)
#   h264-1280x720.h264 the same at ~1.5 Mbps (simulcast layer f)
#   opus-48k.ogg       Opus in Ogg, mono 48 kHz, 20 ms frames, one frame per Ogg page, 10 s:
#                      a 440 Hz tone "speaking" for 2 s (loudness swelling) then silent for 1 s
#   opus-48k.levels    one line per Opus frame of opus-48k.ogg: its RFC 6464 audio level
#                      (0 = 0 dBov, loudest .. 127 = silence), sent in the ssrc-audio-level extension
#
# Every video loop has a keyframe every 2 s and starts with one, so looping it is seamless.
set -euo pipefail

cd "$(dirname "$0")"

DURATION=10
FPS=30
GOP=$((FPS * 2))
FF=(ffmpeg -hide_banner -loglevel error -y)

vp8() { # size bitrate output
    "${FF[@]}" -f lavfi -i "testsrc2=size=$1:rate=$FPS:duration=$DURATION" \
        -c:v libvpx -pix_fmt yuv420p -deadline good -cpu-used 4 \
        -b:v "$2" -minrate "$2" -maxrate "$2" -bufsize "$2" \
        -g "$GOP" -keyint_min "$GOP" -force_key_frames "expr:gte(t,n_forced*2)" \
        -auto-alt-ref 0 -lag-in-frames 0 -error-resilient 1 \
        -f ivf "$3"
}

vp8 320x180 150k vp8-320x180.ivf
vp8 640x360 500k vp8-640x360.ivf
vp8 1280x720 1500k vp8-1280x720.ivf

h264() { # size bitrate output
    "${FF[@]}" -f lavfi -i "testsrc2=size=$1:rate=$FPS:duration=$DURATION" \
        -c:v libx264 -pix_fmt yuv420p -profile:v baseline -level 3.1 -preset veryfast \
        -b:v "$2" -maxrate "$2" -bufsize "$2" -bf 0 \
        -x264-params "keyint=$GOP:min-keyint=$GOP:scenecut=0:rc-lookahead=0:sliced-threads=0:slices=1:repeat-headers=1:aud=0" \
        -f h264 "$3"
}

h264 320x180 150k h264-320x180.h264
h264 640x360 500k h264-640x360.h264
h264 1280x720 1500k h264-1280x720.h264

# Talk-like envelope: 2 s of a swelling tone, 1 s of silence, repeated.
ENVELOPE="if(lt(mod(t,3),2),0.05+0.6*abs(sin(PI*t/2)),0)"
"${FF[@]}" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$DURATION" \
    -af "volume='$ENVELOPE':eval=frame" -ac 1 \
    -c:a libopus -b:a 32k -frame_duration 20 -application audio -vbr off \
    -page_duration 20000 -f ogg opus-48k.ogg

# Level of each 20 ms frame (960 samples) of the decoded loop, as RFC 6464 -dBov in 0..=127.
"${FF[@]}" -i opus-48k.ogg \
    -af "asetnsamples=n=960:p=0,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-" \
    -f null - |
    awk -F= '/RMS_level/ {
        db = $2
        if (db == "-inf" || db + 0 < -127) level = 127
        else { level = int(-db + 0.5); if (level < 0) level = 0; if (level > 127) level = 127 }
        print level
    }' >opus-48k.levels

ls -l vp8-*.ivf h264-*.h264 opus-48k.*
