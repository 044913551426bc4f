"""Sessions, the crash-safe on-disk spool and exporters (XDF, CSV).

Layer: above ``bus`` (it reads the sensor streams through its own consumer group), below
``worker`` (the node runs the recorder). The recorder keeps its sensors at ``medium``
attention or above through :func:`sensorium_desktop.bus.attention.hold_for_recording`.
"""
