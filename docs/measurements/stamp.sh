# Sourced by the device scripts: stamp prefixes each line of its input (progress bars left out)
# with the seconds since it began. Needs $py, the Python to run.
stamp() {
    "$py" -u -c "
import sys, time
t = time.time()
for line in sys.stdin:
    for part in line.rstrip().split(chr(13)):
        if part.strip() and '%|' not in part:
            print(f'{time.time() - t:7.2f} {part}', flush=True)
"
}
