/* macula/version.h — the release version and the protocol versions this build speaks. */
#ifndef MACULA_VERSION_H
#define MACULA_VERSION_H

#define MACULA_VERSION "0.1.0"
#define MACULA_WIRE_VERSION 1 /* Macula v0.8 frame header version byte */

#endif
