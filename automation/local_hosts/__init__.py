"""Real managed hosts on this machine: an OpenSSH sshd, a BIND named and an nginx on loopback.

Used by the tests and the demo. Each host has its own directory with its own keys and configs and
a ``root`` holding the files the automation manages, so nothing under /etc is touched.

- ``automation.local_hosts.host`` — ``LocalHost``: one host, its three daemons and its layout;
- ``automation.local_hosts.sshd`` — ``LocalSshd``, the SSH door;
- ``automation.local_hosts.named`` — ``LocalNamed``, BIND serving the host's zones;
- ``automation.local_hosts.nginx`` — ``LocalNginx`` and who its workers run as;
- ``automation.local_hosts.daemon`` — ``Daemon``, the process control they share.
"""
