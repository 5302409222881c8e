"""A room and a microphone for training renders: pyroomacoustics rooms, pedalboard mic and recorder.

Real piano recordings are made in a room, through a microphone and a recording chain; the
synthetic renders of the offline corpus are dry. :func:`room_and_mic` puts a render in a random
room and picks it up with a random microphone; :func:`recording_chain` adds what happens after the
microphone (compressor, lossy codec). :func:`diffroll.corpus.render.augment_audio` calls both (with its
own noise between them) for a share of the training renders (:attr:`RoomSettings.probability`).

- **Room** (pyroomacoustics, image-source model): a shoebox of random size (a practice room to a
  small hall), its six walls of random energy absorption (jittered around a room mean), with air
  absorption; the piano is a point source at keyboard height somewhere in the room, the microphone
  at a log-uniform distance from it (close-miked to far), in a random direction, aimed at it. The
  image sources go up to ``max_order`` reflections (a cap on time: where Sabine's formula asks for
  more, the late tail is shorter than the room's RT60). The direct sound's travel time is removed,
  so the labels stay aligned with the audio.
- **Microphone** (pyroomacoustics directivity, pedalboard filters): a cardioid-family pattern from
  hyper-cardioid to omni (reflections from behind are weaker), a low cut (rumble filter), a
  presence peak, low and high shelves (proximity effect, off-axis and capsule colour) and, now and
  then, a low-pass (a cheap microphone or recorder).
- **Recorder** (pedalboard): a compressor whose threshold sits under the peak, and now and then MP3
  at a random VBR quality (the LAME encoder's artefacts).

Every draw comes from the caller's ``numpy.random.Generator``; pyroomacoustics' randomised image
sources (which use a global generator) are not used, so a seed gives the same audio bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pedalboard
from scipy import signal

WALLS = ("east", "west", "north", "south", "floor", "ceiling")
WALL_MARGIN_M = 0.5  # neither the piano nor the microphone is closer than this to a wall


@dataclass(frozen=True)
class RoomSettings:
    """Ranges of :func:`room_and_mic` and :func:`recording_chain` (uniform draws unless said).

    - ``probability``: share of augmented renders that go through the room and microphone (the
      others keep :func:`diffroll.corpus.render.augment_audio`'s EQ, synthetic reverb and compressor).
    - ``width_m``, ``length_m``, ``height_m``: the shoebox's size.
    - ``absorption``: the walls' mean energy absorption coefficient; each wall gets it × 0.5–1.5.
    - ``max_order``: most reflections of an image source (cost grows as its cube).
    - ``mic_distance_m``: piano-to-microphone distance, drawn log-uniformly.
    - ``mic_pattern``: the cardioid family's p (0.25 hyper-cardioid, 0.5 cardioid, 1 omni).
    - ``lowcut_hz``: the microphone's high-pass corner.
    - ``presence_hz``, ``presence_db``: a peak (Q 0.7–2) of ± ``presence_db``.
    - ``shelf_db``: low shelf (100–400 Hz) and high shelf (3–6 kHz, below Nyquist) of ± this.
    - ``lowpass_probability``, ``lowpass_hz``: now and then a band-limited microphone or recorder.
    - ``compressor_probability``, ``compressor_ratio``, ``compressor_depth_db`` (threshold under the
      peak), ``compressor_attack_ms``, ``compressor_release_ms``: the recorder's compressor.
    - ``mp3_probability``, ``mp3_vbr_quality``: LAME VBR quality (0 best, 10 worst).
    """

    probability: float = 0.5
    width_m: tuple[float, float] = (3.0, 20.0)
    length_m: tuple[float, float] = (3.0, 25.0)
    height_m: tuple[float, float] = (2.4, 10.0)
    absorption: tuple[float, float] = (0.1, 0.6)
    max_order: int = 24
    mic_distance_m: tuple[float, float] = (0.3, 6.0)
    mic_pattern: tuple[float, float] = (0.25, 1.0)
    lowcut_hz: tuple[float, float] = (20.0, 150.0)
    presence_hz: tuple[float, float] = (1500.0, 6000.0)
    presence_db: float = 6.0
    shelf_db: float = 6.0
    lowpass_probability: float = 0.2
    lowpass_hz: tuple[float, float] = (3500.0, 7000.0)
    compressor_probability: float = 0.5
    compressor_ratio: tuple[float, float] = (1.5, 6.0)
    compressor_depth_db: tuple[float, float] = (6.0, 24.0)
    compressor_attack_ms: tuple[float, float] = (1.0, 30.0)
    compressor_release_ms: tuple[float, float] = (50.0, 300.0)
    mp3_probability: float = 0.3
    mp3_vbr_quality: tuple[float, float] = (2.0, 9.0)


def room_impulse_response(rng: np.random.Generator, sample_rate: int, settings: RoomSettings = RoomSettings()
                          ) -> tuple[np.ndarray, int]:
    """The impulse response from a piano to a microphone in a random shoebox room (pyroomacoustics)
    without the direct sound's travel time, and the lag of its direct sound in samples (the centre
    of pyroomacoustics' fractional-delay filter, whose lead-in comes before it)."""
    import pyroomacoustics as pra  # here: importing it takes ~1 s, and only corpus builds need it
    from pyroomacoustics.directivities import CardioidFamily

    st = settings
    dims = np.array([rng.uniform(*st.width_m), rng.uniform(*st.length_m), rng.uniform(*st.height_m)])
    mean_absorption = rng.uniform(*st.absorption)
    walls = {w: pra.Material(float(np.clip(mean_absorption * rng.uniform(0.5, 1.5), 0.02, 0.99))) for w in WALLS}
    inner = dims - 2 * WALL_MARGIN_M
    piano = np.array([WALL_MARGIN_M + rng.uniform(0, inner[0]), WALL_MARGIN_M + rng.uniform(0, inner[1]),
                      min(rng.uniform(0.8, 1.3), dims[2] - WALL_MARGIN_M)])
    distance = float(np.exp(rng.uniform(*np.log(st.mic_distance_m))))
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi / 3)
    direction = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
    mic = np.clip(piano + distance * direction, WALL_MARGIN_M, dims - WALL_MARGIN_M)  # a wall stops it
    if np.linalg.norm(mic - piano) < 0.1:
        mic = piano + np.array([0.0, 0.0, 0.1])
    pattern = CardioidFamily(orientation=piano - mic, p=float(rng.uniform(*st.mic_pattern)))
    room = pra.ShoeBox(dims, fs=sample_rate, materials=walls, max_order=st.max_order, air_absorption=True)
    room.add_source(piano)
    room.add_microphone(mic, directivity=pattern)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    travel = int(round(np.linalg.norm(mic - piano) / room.c * sample_rate))
    return rir[travel:], pra.constants.get("frac_delay_length") // 2


def microphone(rng: np.random.Generator, sample_rate: int, settings: RoomSettings = RoomSettings()
               ) -> pedalboard.Pedalboard:
    """A random microphone colouring: low cut, presence peak, low and high shelves, maybe a low-pass."""
    st = settings
    top = 0.45 * sample_rate
    board = pedalboard.Pedalboard([
        pedalboard.HighpassFilter(cutoff_frequency_hz=float(rng.uniform(*st.lowcut_hz))),
        pedalboard.PeakFilter(cutoff_frequency_hz=float(min(rng.uniform(*st.presence_hz), 0.8 * top)),
                              gain_db=float(rng.uniform(-st.presence_db, st.presence_db)), q=float(rng.uniform(0.7, 2.0))),
        pedalboard.LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(100.0, 400.0)),
                                  gain_db=float(rng.uniform(-st.shelf_db, st.shelf_db))),
        pedalboard.HighShelfFilter(cutoff_frequency_hz=float(min(rng.uniform(3000.0, 6000.0), 0.8 * top)),
                                   gain_db=float(rng.uniform(-st.shelf_db, st.shelf_db))),
    ])
    if rng.random() < st.lowpass_probability:
        board.append(pedalboard.LowpassFilter(cutoff_frequency_hz=float(min(rng.uniform(*st.lowpass_hz), top))))
    return board


def room_and_mic(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
                 settings: RoomSettings = RoomSettings()) -> np.ndarray:
    """``audio`` played in a random room and picked up by a random microphone (float64, same length:
    the reverberation past the end is cut, as the renders end with a second of tail)."""
    x = np.asarray(audio, dtype=np.float64)
    rir, lag = room_impulse_response(rng, sample_rate, settings)
    wet = signal.fftconvolve(x, rir)[lag: lag + x.size]  # the direct sound where the dry one was
    board = microphone(rng, sample_rate, settings)
    return board(wet.astype(np.float32), sample_rate).astype(np.float64)


def recording_chain(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
                    settings: RoomSettings = RoomSettings()) -> np.ndarray:
    """What follows the microphone: maybe a compressor (threshold under the peak), maybe MP3 (float64,
    same length; pedalboard compensates the encoder's delay)."""
    st = settings
    x = np.asarray(audio, dtype=np.float64)
    board = pedalboard.Pedalboard()
    if rng.random() < st.compressor_probability:
        peak_db = 20 * np.log10(max(float(np.abs(x).max(initial=0.0)), 1e-9))
        board.append(pedalboard.Compressor(threshold_db=float(peak_db - rng.uniform(*st.compressor_depth_db)),
                                           ratio=float(rng.uniform(*st.compressor_ratio)),
                                           attack_ms=float(rng.uniform(*st.compressor_attack_ms)),
                                           release_ms=float(rng.uniform(*st.compressor_release_ms))))
    if rng.random() < st.mp3_probability:
        board.append(pedalboard.MP3Compressor(vbr_quality=float(rng.uniform(*st.mp3_vbr_quality))))
    if not len(board):
        return x
    out = board(x.astype(np.float32), sample_rate).astype(np.float64)
    return out if out.size == x.size else np.pad(out, (0, x.size - out.size))[: x.size]
