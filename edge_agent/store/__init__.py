"""The durable encrypted store, one per channel: segment files of records per priority lane.

    <root>/<channel>/lane-<0|1|2>/<first>.seg  alarm, normal, bulk records (segments.py;
                                 written in place in front of a zero tail, design note 0014;
                                 commits as whole sectors, sectors.py, design note 0018)
    lane-<n>/<first>.idx         a closed segment's record rows, read at start instead of
                                 scanning it (segindex.py, design note 0017)
    acked.log, evicted.log       delivered ranges; dropped ones, with why (acks, eviction)
    seq.hwm, seq.last            numbering (numbering.py; under the service the seq.last
                                 hint is in the runtime directory, a tmpfs)
    reserve.bin                  disk kept for alarms (reserve.py)
    quarantine/, dead/           unreadable files, refused records; bounded (aside.py)
    lock                         flock()ed while open (lock.py)

``channel_store.ChannelStore`` is the facade. A batch is *accepted* when its records are
written and fsynced; only then are its sequence numbers final and returned. A segment file
is deleted once every record in it is acknowledged or evicted, after the journal saying so
is synced (design note 0001). ``max_bytes`` counts the files as they are on disk,
including the zero tail of each lane's active segment. Every write is complete or fails
(core/fsutil.py). A full disk is a state the store lives in: it evicts by policy (oldest,
lowest priority first; never alarms) until the batch fits, spends the alarm reserve on
alarms, and counts what it still cannot take as not accepted; a journal entry it has no
room for is reported now and, after a restart, as a range lost (``corrupt``): never
silent, never fatal (design note 0008).
"""
