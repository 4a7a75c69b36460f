# What a process can see of the machine it runs on: one "what=value" line
# per fact. ch01 compare runs this on the host and in a container.
echo "kernel=$(uname -r)"
echo "hostname=$(hostname)"
echo "PID of shell=$$"
set -- /proc/[0-9]*; echo "processes=$#"
echo "net devices=$(echo $(ls /sys/class/net))"
echo "mounts=$(wc -l < /proc/self/mounts)"
echo "/ holds=$(echo $(ls /))"
echo "user ID=$(id -u)"
echo "capabilities=$(grep CapEff /proc/self/status | { read -r _ caps; echo "$caps"; })"
