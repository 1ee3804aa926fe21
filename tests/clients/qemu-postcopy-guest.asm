; The guest of tests/clients/qemu-postcopy.sh: a boot sector that SeaBIOS
; loads at 0x7c00.  It enters 32-bit protected mode with interrupts off and
; then rewrites a region of its RAM forever, so that pages keep getting
; dirty during the migration:
;
;   pass t = 0, 1, 2, ...: for page p = 0 .. NPAGES-1:
;       COUNTER <- L = t * NPAGES + p          (one dword store, before the page)
;       dword j of the page (j = 0 .. 1023) <- t + p * 1024 + j   (mod 2^32)
;
; so at any instant at which the vCPU is stopped, with t = L / NPAGES and
; c = L % NPAGES read from COUNTER: pages p < c hold pass t, pages p > c
; pass t - 1 (still zero in pass 0), and page c a prefix of pass t followed
; by pass t - 1.  The checker (qemu-postcopy.py) verifies this exactly.
;
; Assemble: nasm -f bin -DBASE=0x1000000 -DNPAGES=8192 -DCOUNTER=0xfff000 -o boot.bin
; Nothing else touches RAM once it runs: no interrupts, no stack, no devices.

%ifndef BASE
%define BASE 0x1000000
%endif
%ifndef NPAGES
%define NPAGES 8192
%endif
%ifndef COUNTER
%define COUNTER 0xfff000
%endif

BITS 16
ORG 0x7c00
start:
	cli
	cld
	xor ax, ax
	mov ds, ax
	mov ss, ax
	mov sp, 0x7c00
	in al, 0x92		; fast A20 gate on
	or al, 2
	and al, 0xfe		; and do not reset
	out 0x92, al
	lgdt [gdt_desc]
	mov eax, cr0
	or eax, 1
	mov cr0, eax
	jmp dword 0x08:pm

BITS 32
pm:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov fs, ax
	mov gs, ax
	mov dword [COUNTER + 4], 0x4d514655	; "UFQM": the checker finds the guest by it
	mov dword [COUNTER + 8], BASE
	mov dword [COUNTER + 12], NPAGES
	xor esi, esi		; L = t * NPAGES + p
	xor ebx, ebx		; t
pass:
	xor ecx, ecx		; p
page:
	mov [COUNTER], esi
	mov edi, ecx
	shl edi, 12
	add edi, BASE
	mov eax, ecx
	shl eax, 10
	add eax, ebx		; t + p * 1024
	mov edx, 1024
fill:
	mov [edi], eax
	add edi, 4
	inc eax
	dec edx
	jnz fill
	inc esi
	inc ecx
	cmp ecx, NPAGES
	jb page
	inc ebx
	jmp pass

align 8
gdt:
	dq 0
	dq 0x00cf9a000000ffff	; 0x08: code, flat 4 GiB, 32-bit
	dq 0x00cf92000000ffff	; 0x10: data, flat 4 GiB
gdt_desc:
	dw gdt_desc - gdt - 1
	dd gdt

	times 510 - ($ - $$) db 0
	dw 0xaa55
