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
while read -r key value; do
    [ "$key" = CapEff: ] && echo "capabilities=$value"
done < /proc/self/status
