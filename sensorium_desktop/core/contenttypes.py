"""XDF/LSL content types of our attributes: the stream ``type`` consumers search for.

LSL tools resolve streams by type and EEGLAB's XDF import looks for exactly ``EEG``; the
XDF meta-data conventions name the types (case-sensitive). One table maps every attribute
id to its content type; the attribute id itself travels in the stream's ``desc``.

| attribute | type |
|---|---|
| eeg | EEG |
| ecg | ECG |
| emg | EMG |
| eog | EOG |
| ppg | PPG |
| respiration | Respiration |
| hr, heartrate | HeartRate |
| hrv, rr | HRV |
| spo2 | SpO2 |
| accelerometer, gravity | Accelerometer |
| gyroscope | Gyroscope |
| magnetometer | Magnetometer |
| imu, quaternion, euler, orientation, heading | IMU |
| skeleton, pose | MoCap |
| eye_gaze | Gaze |
| eye_aperture, eye_blink, eye_worn | Pupillometry |
| marker (strings) | Markers |
| trigger, tap, button (numeric event codes) | Stim |
| audio, microphone | Audio |
| video | VideoRaw |
| temperature | Temperature |
| anomaly (a sensor's signal quality) | Anomaly |
| geolocation, altitude, speed | Position |
| anything else | the attribute id |
"""

from __future__ import annotations

CONTENT_TYPES: dict[str, str] = {
    "eeg": "EEG", "ecg": "ECG", "emg": "EMG", "eog": "EOG", "ppg": "PPG", "respiration": "Respiration",
    "hr": "HeartRate", "heartrate": "HeartRate", "hrv": "HRV", "rr": "HRV", "spo2": "SpO2",
    "accelerometer": "Accelerometer", "gravity": "Accelerometer", "gyroscope": "Gyroscope",
    "magnetometer": "Magnetometer", "imu": "IMU", "quaternion": "IMU", "euler": "IMU", "orientation": "IMU",
    "heading": "IMU", "skeleton": "MoCap", "pose": "MoCap", "pose_world": "MoCap", "eye_gaze": "Gaze",
    "eye_aperture": "Pupillometry", "pupil_diameter": "Pupillometry",
    "eye_blink": "Pupillometry", "eye_worn": "Pupillometry", "marker": "Markers", "trigger": "Stim",
    "tap": "Stim", "button": "Stim", "audio": "Audio", "microphone": "Audio", "video": "VideoRaw",
    "temperature": "Temperature", "anomaly": "Anomaly", "geolocation": "Position", "altitude": "Position",
    "speed": "Position",
}  # fmt: skip


#: Words naming a stream whose content type other attributes share (three ``Pupillometry``
#: streams of one eye tracker were indistinguishable by name).
NAME_WORDS: dict[str, str] = {
    "eye_aperture": "Eye aperture", "eye_blink": "Blinks", "eye_worn": "Worn", "trigger": "Trigger", "tap": "Taps",
    "button": "Buttons", "rr": "RR intervals", "quaternion": "Quaternion", "euler": "Euler angles",
    "orientation": "Orientation", "heading": "Heading", "gravity": "Gravity", "altitude": "Altitude",
    "speed": "Speed", "pose": "Pose", "pose_world": "World landmarks", "pupil_diameter": "Pupil",
    "fixation": "Fixations",
}  # fmt: skip


def display_name(device_name: str, attribute: str, shares_device: bool, word: str = "") -> str:
    """A stream's name for people and LSL/XDF tools: the device's name, followed by what the
    stream holds when the device has several (``Polar H10 ECG``, ``Pupil Core Blinks``);
    ``word`` names it when the device has several of one attribute (a sensor's
    ``extra["stream_word"]``: ``Gaze on Screen``, ``Pupil eye0``)."""
    what = word or NAME_WORDS.get(attribute, content_type(attribute))
    return f"{device_name} {what}" if shares_device else device_name


def content_type(attribute: str) -> str:
    """The XDF/LSL content type of an attribute id (the id itself when none applies):
    ``Markers`` only for string event streams, ``Stim`` for numeric event codes."""
    return CONTENT_TYPES.get(attribute, attribute)
