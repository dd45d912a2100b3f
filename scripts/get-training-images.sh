#!/usr/bin/env bash
# Builds the folder of photographs that streamdn's temporal networks train on, from Debian
# packages (docs/training-data.md says what is in it and why):
#
#   scripts/get-training-images.sh [DIR]          # DIR defaults to ~/.cache/streamdn/images
#   streamdn train --config configs/train-fast.toml --images DIR
#
# Every photograph is listed below, package by package (only photographs: the abstract and
# rendered wallpapers of the same packages are left out). Each is downscaled once to at most
# MAX_SIDE pixels on its long side (default 1536; INTER_AREA, which also averages away some of
# the wallpapers' JPEG artefacts), written as DIR/NAME.png (8-bit BGR) and listed in
# DIR/SOURCES.tsv (file, package, original path, licence).
#
# The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a
# temporary folder, removed at the end: nothing is installed, since several of the packages
# are applications whose dependencies (270 packages for kphotoalbum) are not needed for their
# pictures. `apt-get update` runs first when the script runs as root.
#
# Re-runnable: photographs already in DIR are kept and their packages are not fetched again;
# SOURCES.tsv is rewritten each time (the same content for the same DIR). Files of your own in
# DIR are left alone (and are trained on too: the training reads every image in the folder).
#
# Environment: MAX_SIDE (pixels), PYTHON (an interpreter with streamdn installed, default python3).
# Needs: apt-get and dpkg-deb (Debian or a derivative); about 260 MB of downloads on a first run.
set -euo pipefail

DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/streamdn/images}
MAX_SIDE=${MAX_SIDE:-1536}
PYTHON=${PYTHON:-python3}

NAMES=() PKGS=() PATHS=() LICENCES=()

# take PACKAGE PREFIX LICENCE PATH...: photographs of one package under one licence. A file is
# written as PREFIX-STEM.png, STEM being its file name without extension (or, for a KDE
# wallpaper .../NAME/contents/images/WxH.jpg, the wallpaper's NAME).
take() {
    local pkg=$1 prefix=$2 licence=$3 path stem
    shift 3
    for path in "$@"; do
        if [[ $path == */contents/images/* ]]; then
            stem=${path%/contents/images/*}
            stem=${stem##*/}
        else
            stem=${path##*/}
            stem=${stem%.*}
        fi
        NAMES+=("$prefix-${stem//[^A-Za-z0-9._-]/_}.png")
        PKGS+=("$pkg") PATHS+=("$path") LICENCES+=("$licence")
    done
}

# MATE's nature/ folder (its abstract/ and desktop/ folders are rendered art).
take mate-backgrounds mate "GPL-2+" \
    /usr/share/backgrounds/mate/nature/{Aqua,Blinds,Dune,FreshFlower,Garden,GreenMeadow,LadyBird,RainDrops,Storm,TwoWings,Wood,YellowFlower}.jpg

# KDE Plasma: the 11 photographs among its 30 wallpapers. Debian's copyright file says GPL-2+
# for the package; each wallpaper's metadata.json says LGPLv3.
take plasma-workspace-wallpapers plasma "LGPL-3 (metadata.json); GPL-2+ (debian/copyright)" \
    /usr/share/wallpapers/{BytheWater,ColdRipple,ColorfulCups,DarkestHour,EveningGlow,FallenLeaf,Grey,Kite,OneStandsOut,Path,summer_1am}/contents/images/2560x1600.jpg

# Lomiri (Ubuntu Touch) community wallpapers, licences per file from debian/copyright
# (analogpattern, umang and the other 20.04 ones are abstract or rendered).
L=/usr/share/backgrounds
take lomiri-wallpapers-16.04 lomiri "CC-BY-4.0" \
    $L/{aitzgorri,friends,life,picosdeeuropa,sunset}_by_Aitzol_Berasategi.jpg \
    $L/Picture_{0B,1A}_by_freespace.jpg $L/Wine_by_Jakkub_Mede.jpg
take lomiri-wallpapers-16.04 lomiri "CC-BY-SA-4.0" \
    $L/Bridge_by_Sander_Klootwijk.jpg $L/Dragonfly_by_Bolly.jpg $L/{free,greentock}_by_Peter_Nerlich.jpg
take lomiri-wallpapers-16.04 lomiri "CC0-1.0" $L/seeding_by_Clements_Engelhardt.jpg
take lomiri-wallpapers-20.04 lomiri "CC-BY-SA-3.0" $L/Kleiber_by_Lukas_Baubkus.jpg

# LXQt: the photographs of /usr/share/lxqt/wallpapers (its License file: CC-BY-SA-3.0).
take lxqt-themes lxqt "CC-BY-SA-3.0 (wallpapers/License)" \
    /usr/share/lxqt/wallpapers/{Butterfly-Kenneth-Wimer.jpg,Valendas.png,after-the-rain.jpg,appleflower.png,beam.png,butterfly.png,cloud.png,drop.png,flowers.png,fog.jpg,this-is-not-windows.jpg}

# LemonLDAP::NG's login backgrounds: landscapes from Wikimedia Commons.
L="/usr/share/lemonldap-ng/portal/htdocs/static/common/backgrounds"
take liblemonldap-ng-portal-perl lemonldap "GFDL-1.3 or CC-BY-NC-ND-3.0 (Wikimedia Commons)" \
    "$L/1280px-Anse_Source_d'Argent_2-La_Digue.jpg" \
    $L/1280px-{Autumn-clear-water-waterfall-landscape_-_Virginia_-_ForestWander,BrockenSnowedTrees,Cedar_Breaks_National_Monument_partially,Parry_Peak_from_Winter_Park}.jpg \
    $L/Aletschgletscher_mit_Pinus_cembra1.jpg

# Lifeograph's diary backgrounds (trams.jpg is blurred and darkened: left out).
take lifeograph lifeograph "GPL-3+" \
    /usr/share/net.sourceforge.Lifeograph/backgrounds/{cloister,fog,horizon,pier,sands,snow,street}.jpg

# Zoph's two template backgrounds (5184x3456 camera photographs).
take zoph zoph "GPL-2+" /usr/share/zoph/www/php/templates/default/images/backgrounds/{fir,flower}.jpg

# Palapeli's jigsaw puzzles (licences from each puzzle's .desktop file).
L=/usr/share/palapeli/collection
take palapeli-data palapeli "GFDL (Eric Pouhier)" $L/castle-maintenon.jpg
take palapeli-data palapeli "public domain (Derek Jensen)" $L/cincinnati-bridge.jpg
take palapeli-data palapeli "public domain (US Department of Agriculture)" $L/citrus-fruits.jpg
take palapeli-data palapeli "public domain (John Severns)" $L/european-honey-bee.jpg
take palapeli-data palapeli "GFDL (B. Navez and others)" $L/panther-chameleon-female.jpg

# MATE screensaver's NASA photographs of the Earth (the nebulae and galaxies are left out).
take mate-screensaver-common cosmos "GPL-2+ or LGPL-2+ (debian/copyright); NASA imagery" \
    /usr/share/backgrounds/cosmos/{earth-horizon,blue-marble-west}.jpg

# KPhotoAlbum's demo album: everyday snapshots (people, pets, bars, beaches), 800x600.
take kphotoalbum kphotoalbum "GPL-2+" \
    /usr/share/kphotoalbum/demo/{anne_helene,bar55,bar55_2,blackie,cold_water,donna,donna_2,grand_canyon_1,grand_canyon_2,grand_canyon_3,jesper,jesper_2,new_wave_1,new_wave_2,pool,pool_2,qt-logo,skagen,skagen_2,snow,spiff,spiff_2,sunset,wayne}.jpg

# Scratch 1.4's photographic stage backgrounds, 480x360 (the drawn ones are left out).
L=/usr/share/scratch/Media/Backgrounds
take scratch scratch "CC-BY-SA-3.0" \
    $L/Indoors/{chalkboard,clothing-store,hall,kitchen,the-movies-inside}.jpg \
    $L/Nature/{beach-malibu,canyon,flower-bed,forest,garden-rock,grand-canyon,gravel-desert,hill,lake,moon,pathway,tree,water-and-rocks,wave}.jpg \
    $L/Outdoors/{all-sports-mural,atom-playground,bench-with-view,berkeley-mural,boardwalk,brick-wall-and-stairs,brick-wall1,brick-wall2,building-at-mit,building-fireproof,castle,city-with-water,city-with-water2,driveway,graffiti,hallway_outdoors,hay_field,houses,mansion,mural-faro,parking-ramp,pool,route66,silos,the-movies,train-tracks1,train-tracks2,village,wooden-house}.jpg \
    $L/Sports/{baseball-field,basketball-court1-a,basketball-court1-b,football-field,playing-field,tennis-backboard}.jpg

# -- build ------------------------------------------------------------------------------------

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# Packages with a photograph not yet in DIR.
NEED=()
for i in "${!NAMES[@]}"; do
    if [[ ! -f $DIR/${NAMES[$i]} ]] && [[ " ${NEED[*]} " != *" ${PKGS[$i]} "* ]]; then
        NEED+=("${PKGS[$i]}")
    fi
done

if ((${#NEED[@]})); then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamdn-images.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    if [[ $(id -u) == 0 ]]; then
        echo "apt-get update"
        apt-get update -qq
    else
        echo "not root: skipping apt-get update (the package lists on this machine are used as they are)"
    fi
    mkdir -p "$WORK/debs" "$WORK/root"
    for pkg in "${NEED[@]}"; do
        echo "fetching $pkg"
        # The notice about an unsandboxed download (as root into a private folder) is harmless.
        if ! (cd "$WORK/debs" && apt-get download -q "$pkg" >"$WORK/apt.log" 2>&1); then
            echo "warning: apt-get download $pkg failed; its photographs are skipped:" >&2
            sed 's/^/    /' "$WORK/apt.log" >&2
            continue
        fi
        dpkg-deb -x "$WORK/debs/${pkg}"_*.deb "$WORK/root"
    done
    : >"$WORK/todo.tsv"
    for i in "${!NAMES[@]}"; do
        [[ -f $DIR/${NAMES[$i]} ]] && continue
        src=$WORK/root${PATHS[$i]}
        if [[ -f $src ]]; then
            printf '%s\t%s\n' "$src" "$DIR/${NAMES[$i]}" >>"$WORK/todo.tsv"
        elif [[ -n $(compgen -G "$WORK/debs/${PKGS[$i]}_*.deb") ]]; then
            echo "warning: ${PATHS[$i]} is not in this version of ${PKGS[$i]}; skipped" >&2
        fi
    done
    echo "converting $(wc -l <"$WORK/todo.tsv") photographs (long side at most $MAX_SIDE px) into $DIR"
    "$PYTHON" - "$MAX_SIDE" "$WORK/todo.tsv" <<'EOF'
import sys

from streamdn.data.images import write_training_copy

max_side, todo = int(sys.argv[1]), sys.argv[2]
with open(todo, encoding="utf-8") as fh:
    for line in fh:
        src, dst = line.rstrip("\n").split("\t")
        h, w = write_training_copy(src, dst, max_side)
        print(f"  {dst.rsplit('/', 1)[-1]}  {w}x{h}", flush=True)
EOF
fi

# SOURCES.tsv: every listed photograph that is in DIR (written beside, then renamed).
{
    printf 'file\tpackage\toriginal_path\tlicence\n'
    for i in "${!NAMES[@]}"; do
        if [[ -f $DIR/${NAMES[$i]} ]]; then
            printf '%s\t%s\t%s\t%s\n' "${NAMES[$i]}" "${PKGS[$i]}" "${PATHS[$i]}" "${LICENCES[$i]}"
        fi
    done
} >"$DIR/.SOURCES.tsv.tmp"
mv "$DIR/.SOURCES.tsv.tmp" "$DIR/SOURCES.tsv"

have=$(($(wc -l <"$DIR/SOURCES.tsv") - 1))
echo "$DIR: $have of ${#NAMES[@]} photographs, $(du -sh "$DIR" | cut -f1), ${SECONDS}s"
if ((have < ${#NAMES[@]})); then
    echo "warning: $((${#NAMES[@]} - have)) photographs are missing (see the warnings above)" >&2
fi
